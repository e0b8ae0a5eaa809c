"""Worker process of the stock CPython adapter (coextra_cpython).

Runs inside the interpreter under test, CPython 3.6 or later, so it is
kept plain: no annotations, no dataclasses, no f-strings.

Usage: ``python worker.py BUILD_DIR``, where BUILD_DIR holds the compiled
``_coextra_cpython`` extension.  The host sends one JSON object per line on
stdin, ``{"op": NAME, ...arguments}``, and reads one JSON object per line
back on the original stdout:

* ``{"ok": RESULT}`` on success;
* ``{"api": [FUNCTION, EXCEPTION-OR-NULL]}`` when a call of the co_extra
  API returned its error value;
* ``{"bug": TRACEBACK}`` when the worker itself failed (an adapter bug).

Requests also carry ``"id"`` (echoed in the answer) and ``"thread"`` (the
suite thread that sent them): requests of different suite threads run on
different threads of the worker, so answers may come in any order.

The first line the worker writes is a handshake, ``{"hello": {...}}`` or
``{"bug": ...}`` if the extension cannot be imported.  Objects stay in the
worker and are named by integer handles.
"""

import builtins
import gc
import itertools
import json
import marshal
import os
# Imported now, not when the first suite thread arrives: importing
# constructs code objects, which the hooks under test would see.
import queue
import struct
import sys
import sysconfig
import threading
import traceback
import types
import weakref


try:  # only for the type comments; typing exists on every version run
    from typing import Any, Dict, List, Optional, Set, Tuple  # noqa: F401
except ImportError:  # pragma: no cover
    pass

# BEGIN GENERATED: contract
# Copied from conformance/contract.py, which this interpreter
# cannot import; do not edit: python tools/gen_contract_copies.py
REQUEST = "PyUnstable_Eval_RequestCodeExtraIndex"
RELEASE = "PyUnstable_Eval_ReleaseCodeExtraIndex"
GET = "PyUnstable_Code_GetExtra"
SET = "PyUnstable_Code_SetExtra"
COMPARE_EXCHANGE = "PyUnstable_Code_CompareExchangeExtra"
ADD_HOOK = "PyUnstable_Code_AddConstructorHook"
REMOVE_HOOK = "PyUnstable_Code_RemoveConstructorHook"
HAS_INLINE = "PyUnstable_Code_HasInlineExtra"
CONSTRUCT = "code object construction"
# END GENERATED: contract

# The recording actions by the codes of the _coextra_cpython extension.
FREE_ACTIONS = {
    "record": 0,
    "get": 1,
    "set": 2,
    "new-code": 3,
    "check-error": 4,
    "set-error": 5,
}
HOOK_ACTIONS = {
    "record": 0,
    "fail": 1,
    "set-extra": 2,
    "new-code": 3,
    "add-hook": 4,
    "remove-hook": 5,
    "fail-without-exception": 6,
}


class ApiFailure(Exception):
    """An API call returned its error value."""

    def __init__(self, function, exc_type):
        # type: (str, Optional[str]) -> None
        Exception.__init__(self, function, exc_type)
        self.function = function
        self.exc_type = exc_type


#: Built with --disable-gil (3.13t): see op_drop.
FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


class Worker(object):
    """Holds the objects of one session and executes requests."""

    def __init__(self, cx):
        # type: (Any) -> None
        self.cx = cx
        self.objects = {}  # type: Dict[int, Any]
        # next() of a count is atomic under the GIL; requests from the
        # suite's threads run concurrently (see serve()).
        self.handles = itertools.count(1)
        self.counters = itertools.count(1)
        self.unraisable = []  # type: List[str]
        # Live sub-interpreters, for collecting garbage in each (below).
        self.live_interps = set()  # type: Set[int]
        # Interpreters with their own GIL and object allocator, and the one
        # each object was made in: such an object must be destroyed by its
        # own interpreter's allocator (see op_drop()).
        self.own_gil = set()  # type: Set[int]
        self.ended = set()  # type: Set[int]
        self.owners = {}  # type: Dict[int, int]
        # Objects of ended own-allocator interpreters (see op_drop()).
        self.orphans = []  # type: List[Any]
        # A sub-interpreter that never gets hooks or indices; see
        # flagged_code().
        self.scratch = None

    # -- helpers -------------------------------------------------------

    def keep(self, obj, interp=0):
        # type: (object, int) -> int
        handle = next(self.handles)
        self.objects[handle] = obj
        if interp in self.own_gil:
            self.owners[handle] = interp
        return handle

    def obj(self, handle):
        # type: (int) -> Any
        return self.objects[handle]

    def check(self, function, pair):
        # type: (str, Tuple[int, Optional[str]]) -> int
        rc, exc_type = pair
        if rc < 0:
            raise ApiFailure(function, exc_type)
        return rc

    def construct(self, interp, function, args, kwargs=None):
        # type: (int, Any, Tuple[Any, ...], Optional[Dict[str, Any]]) -> Any
        """Run ``function`` in ``interp``; its failure is an API failure.

        Code objects are constructed by the interpreter that runs the
        compiler (or replace(), or marshal), so that is where allocation
        failures are armed and where errors come from.
        """
        try:
            if kwargs:
                return self.cx.call_in(interp, function, args, kwargs)
            return self.cx.call_in(interp, function, args)
        except Exception as exc:
            raise ApiFailure(CONSTRUCT,
                             type(exc).__name__) from None

    def flagged_code(self, interp, source, filename, flags):
        # type: (int, str, str | bytes, int) -> Any
        """Construct compiled ``source`` with extra co_flags bits, once.

        compile() cannot set co_flags, and replace() after it would be a
        second construction that hooks see.  So the source is compiled in
        a scratch interpreter that has no hooks, the flags are written
        into the marshalled outer code object, and unmarshalling in
        ``interp`` constructs every code object exactly once there, with
        the caller-supplied flags.
        """
        if self.scratch is None:
            self.scratch = self.cx.new_interpreter()
        code = self.cx.call_in(self.scratch, compile,
                               (source, filename, "exec"))
        data = bytearray(marshal.dumps(code))
        # Fields before co_flags: argcount, [posonlyargcount (3.8+)],
        # kwonlyargcount, [nlocals (up to 3.10)], stacksize.
        before = 4 if sys.version_info[:2] in ((3, 6), (3, 7)) else (
            5 if sys.version_info < (3, 11) else 4)
        offset = 1 + 4 * before
        old, = struct.unpack_from("<I", data, offset)
        if data[0] & 0x7F != ord("c") or old != code.co_flags:
            raise RuntimeError("unexpected marshal layout of a code object")
        struct.pack_into("<I", data, offset, old | flags)
        return self.construct(interp, marshal.loads, (bytes(data),))

    def copy(self, interp, code, **changes):
        # type: (int, Any, **Any) -> Any
        """Construct a new code object from ``code`` in ``interp``.

        This is code.replace(); 3.6 and 3.7 have no replace() and call the
        constructor, which is what replace() does on later versions.
        """
        if hasattr(code, "replace"):
            return self.construct(interp, code.replace, (), changes)
        fields = dict(
            co_argcount=code.co_argcount,
            co_kwonlyargcount=code.co_kwonlyargcount,
            co_nlocals=code.co_nlocals,
            co_stacksize=code.co_stacksize,
            co_flags=code.co_flags,
            co_code=code.co_code,
            co_consts=code.co_consts,
            co_names=code.co_names,
            co_varnames=code.co_varnames,
            co_filename=code.co_filename,
            co_name=code.co_name,
            co_firstlineno=code.co_firstlineno,
            co_lnotab=code.co_lnotab,
            co_freevars=code.co_freevars,
            co_cellvars=code.co_cellvars,
        )
        fields.update(changes)
        return self.construct(interp, types.CodeType, (
            fields["co_argcount"], fields["co_kwonlyargcount"],
            fields["co_nlocals"], fields["co_stacksize"],
            fields["co_flags"], fields["co_code"], fields["co_consts"],
            fields["co_names"], fields["co_varnames"],
            fields["co_filename"], fields["co_name"],
            fields["co_firstlineno"], fields["co_lnotab"],
            fields["co_freevars"], fields["co_cellvars"]))

    # -- object model ----------------------------------------------------

    def op_new_interpreter(self, own_gil=False):
        # type: (bool) -> int
        interp = int(self.cx.new_interpreter(bool(own_gil)))
        self.live_interps.add(interp)
        if own_gil:
            self.own_gil.add(interp)
        return interp

    def op_end_interpreter(self, interp):
        # type: (int) -> None
        self.live_interps.discard(interp)
        self.cx.end_interpreter(interp)
        self.ended.add(interp)
        return None

    def op_new_code(self, interp, nested=0, flags=0):
        # type: (int, int, int) -> int
        n = next(self.counters)
        if nested:
            # Each function body is a constant of the module code object;
            # the compiler constructs them before the module (inner
            # first).  Distinct names keep every code object distinct.
            source = "".join(
                "def f_%d_%d():\n    return %d\n" % (n, i, i)
                for i in range(nested))
        else:
            source = "v_%d = %d\n" % (n, n)
        name = "<coextra-%d>" % n
        filename = name  # type: str | bytes
        if interp in self.own_gil:
            # An interpreter with its own object allocator must not keep
            # an object the main interpreter allocated: the code object
            # would hold this str as co_filename and free it with the
            # wrong allocator (free(): invalid pointer).  compile()
            # decodes a bytes file name into a str of the interpreter
            # that runs it.
            filename = name.encode("ascii")
        if flags:
            return self.keep(
                self.flagged_code(interp, source, filename, flags), interp)
        # The interpreter that runs the compiler constructs the objects.
        code = self.construct(interp, compile, (source, filename, "exec"))
        return self.keep(code, interp)

    def op_nested(self, code):
        # type: (int) -> List[int]
        interp = self.owners.get(code, 0)
        return [self.keep(c, interp) for c in self.obj(code).co_consts
                if isinstance(c, types.CodeType)]

    def op_copy_code(self, interp, code, how):
        # type: (int, int, str) -> int
        original = self.obj(code)
        if how == "replace":
            return self.keep(self.copy(interp, original), interp)
        if how == "marshal":
            data = marshal.dumps(original)
            return self.keep(
                self.construct(interp, marshal.loads, (data,)), interp)
        raise ValueError("unknown copy method %r" % (how,))

    def op_new_non_code(self):
        # type: () -> int
        # A fresh int object (too large for the small-int cache).
        return self.keep(int("1" * 30) + next(self.counters))

    def op_drop_with_error(self, obj, exc_type):
        # type: (int, str) -> Optional[str]
        if self.owners.get(obj, 0):
            raise ValueError(
                "drop_with_error: only objects of the main interpreter")
        exc_class = getattr(builtins, exc_type)
        box = [self.objects.pop(obj)]
        # The extension takes the object out of the box before releasing
        # it, so that the release destroys it with the exception set.
        left = self.cx.drop_with_error(box, exc_class)  # type: Optional[str]
        return left

    def op_drop(self, obj):
        # type: (int) -> None
        owner = self.owners.pop(obj, 0)
        if owner in self.ended:
            # Made by an interpreter with its own object allocator, which
            # has ended: no interpreter left can free its memory (the main
            # one's allocator aborts on it, PEP 684 forbids such sharing),
            # so it is kept, never destroyed.
            self.orphans.append(self.objects.pop(obj))
            return None
        holder = [self.objects.pop(obj)]
        try:
            ref = weakref.ref(holder[0])
        except TypeError:
            ref = None
        if owner:
            # An interpreter with its own allocator: the last reference
            # goes, and the object is destroyed, in that interpreter, and
            # nothing the main interpreter allocated (such as a list
            # holding it) is freed there.
            token = self.cx.park(holder.pop())
            self.cx.drop_parked(owner, token)
        else:
            holder.clear()
        if ref is not None and ref() is not None:
            # Held by a reference cycle (or by another handle, in which
            # case collecting is harmless).
            if owner:
                self.cx.call_in(owner, gc.collect, ())
            else:
                gc.collect()
        if ref is not None and ref() is not None and FREE_THREADED_BUILD:
            # Free-threaded builds free code objects (deferred reference
            # counts) only in a collection of the interpreter whose heap
            # holds them, which may be a sub-interpreter.
            for interp in sorted(self.live_interps):
                self.cx.call_in(interp, gc.collect, ())
        return None

    def op_code_id(self, code):
        # type: (int) -> int
        return int(self.cx.address(self.obj(code)))

    def op_co_flags(self, code):
        # type: (int) -> int
        # The C field: a PEP 9999 build may hide CO_INLINE_EXTRA from the
        # Python attribute, which op_py_co_flags reports.
        return int(self.cx.c_co_flags(self.obj(code)))

    def op_py_co_flags(self, code):
        # type: (int) -> int
        return int(self.obj(code).co_flags)

    def op_python_view(self, code):
        # type: (int) -> Dict[str, Any]
        obj = self.obj(code)
        return {
            "co_flags": int(obj.co_flags),
            "hash": hash(obj),
            "marshal": marshal.dumps(obj).hex(),
        }

    def op_python_equal(self, a, b):
        # type: (int, int) -> bool
        return bool(self.obj(a) == self.obj(b))

    # -- the API ---------------------------------------------------------

    def op_hammer(self, codes, index, threads, rounds, shared):
        # type: (List[int], int, int, int, bool) -> List[List[int]]
        # Set/Get loops in C on native threads (free-threading stress).
        objects = [self.obj(c) for c in codes]
        return [list(t) for t in self.cx.hammer(
            objects, index, threads, rounds, bool(shared))]

    def op_request_index(self, interp, free=None):
        # type: (int, Optional[Dict[str, Any]]) -> int
        tag = -1
        if free is not None:
            tag = free["tag"]
            target = free.get("code")
            self.cx.configure_free(
                tag, FREE_ACTIONS[free["action"]],
                None if target is None else self.obj(target),
                free["index"], free["value"])
        return self.check(self.cx.REQUEST_NAME,
                          self.cx.request_index(interp, tag))

    def op_release_index(self, interp, index):
        # type: (int, int) -> None
        self.check(RELEASE,
                   self.cx.release_index(interp, index))
        return None

    def op_get_extra(self, interp, code, index, prime=0):
        # type: (int, int, int, int) -> int
        pair, value = self.cx.get_extra(interp, self.obj(code), index, prime)
        self.check(self.cx.GET_NAME, pair)
        return int(value)

    def op_get_extra_on_error(self, interp, code, index, prime):
        # type: (int, int, int, int) -> List[Any]
        pair, value = self.cx.get_extra(interp, self.obj(code), index, prime)
        rc, exc_type = pair
        return [rc, exc_type, value]

    def op_set_extra(self, interp, code, index, value):
        # type: (int, int, int, int) -> None
        self.check(self.cx.SET_NAME,
                   self.cx.set_extra(interp, self.obj(code), index, value))
        return None

    def op_compare_exchange_extra(self, interp, code, index, expected,
                                  desired):
        # type: (int, int, int, int, int) -> List[int]
        pair, current = self.cx.compare_exchange_extra(
            interp, self.obj(code), index, expected, desired)
        rc = self.check(COMPARE_EXCHANGE, pair)
        return [rc, int(current)]

    def op_add_hook(self, interp, tag, action, index, value):
        # type: (int, int, str, int, int) -> int
        name = "PyCode_AddWatcher" if self.cx.WATCHERS else ADD_HOOK
        return self.check(name, self.cx.add_hook(
            interp, tag, HOOK_ACTIONS[action], index, value))

    def op_remove_hook(self, interp, hook_id):
        # type: (int, int) -> None
        name = "PyCode_ClearWatcher" if self.cx.WATCHERS else REMOVE_HOOK
        self.check(name, self.cx.remove_hook(interp, hook_id))
        return None

    def op_has_inline_extra(self, code):
        # type: (int) -> bool
        return self.check(HAS_INLINE,
                          self.cx.has_inline_extra(self.obj(code))) == 1

    # -- observation -----------------------------------------------------

    def op_extra_bytes(self, code):
        # type: (int) -> int
        return int(self.cx.extra_bytes(self.obj(code)))

    def op_sizeof(self, code):
        # type: (int) -> int
        return sys.getsizeof(self.obj(code))

    def op_fail_allocations(self, after, count):
        # type: (int, int) -> None
        self.cx.fail_allocations(after, count)
        return None

    def op_take_free_calls(self):
        # type: () -> List[List[Any]]
        calls, lost = self.cx.take_free_calls()
        if lost:
            raise MemoryError("%d free calls could not be recorded" % lost)
        return [list(c) for c in calls]

    def op_take_hook_calls(self):
        # type: () -> List[List[Any]]
        if not hasattr(self.cx, "take_hook_calls"):
            return []
        calls, lost = self.cx.take_hook_calls()
        if lost:
            raise MemoryError("%d hook calls could not be recorded" % lost)
        return [list(c) for c in calls]

    def op_take_unraisable(self):
        # type: () -> List[str]
        names, self.unraisable = self.unraisable, []
        return names

    def op_pending_error(self):
        # type: () -> Optional[str]
        pending = self.cx.take_pending()
        return None if pending is None else str(pending)

    def op_thread_ident(self):
        # type: () -> int
        # Used by the adapter's own tests: which worker thread ran this.
        return threading.current_thread().ident or 0

    def op_crash(self, how):
        # type: (str) -> None
        # Used by the adapter's own tests to check crash reporting.
        if how == "abort":
            os.abort()
        os.kill(os.getpid(), int(how))
        return None

    def op_hang(self):
        # type: () -> None
        # Used by the adapter's own tests to check hang reporting: never
        # answers (the adapter's request time limit must end it).
        threading.Event().wait()
        return None

    def record_unraisable(self, unraisable):
        # type: (Any) -> None
        self.unraisable.append(unraisable.exc_type.__name__)


def main():
    # type: () -> None
    build_dir = sys.argv[1]
    # The protocol owns the original stdout; anything else printed (by
    # CPython itself or by a stray print) goes to stderr instead.
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message):
        # type: (Dict[str, Any]) -> None
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    sys.path.insert(0, build_dir)
    try:
        import _coextra_cpython as cx  # type: ignore[import-not-found]
    except Exception:
        send({"bug": traceback.format_exc()})
        return
    worker = Worker(cx)
    if hasattr(sys, "unraisablehook"):
        sys.unraisablehook = worker.record_unraisable
    impl = sys.implementation
    send({"hello": {
        "implementation": impl.name,
        "version": list(sys.version_info[:3]),
        "release": "%s%s" % (sys.version_info.releaselevel[0],
                             sys.version_info.serial),
        "executable": sys.executable,
        "pid": os.getpid(),
        "pep9999": bool(cx.PEP9999),
        "watchers": bool(cx.WATCHERS),
        "compare_exchange": hasattr(cx, "compare_exchange_extra"),
        "own_gil": bool(cx.OWN_GIL),
        # False on a free-threaded build running without the GIL.
        "gil": bool(getattr(sys, "_is_gil_enabled", lambda: True)()),
        "functions": [cx.REQUEST_NAME, cx.GET_NAME, cx.SET_NAME],
    }})
    serve(worker, send)
    # End of input: leave without finalizing.  Sub-interpreters may still
    # be alive, and what finalization would do is not under test.
    channel.flush()
    os._exit(0)


#: For the project's own tests of hang reporting: requests of this
#: operation hang instead of running, so a whole suite run can be shown to
#: end with the test that sent one reported as timed out.
HANG_ON = os.environ.get("COEXTRA_WORKER_HANG_ON", "")


def execute(worker, request, send):
    # type: (Worker, Dict[str, Any], Any) -> None
    """Run one request and send its answer, tagged with its id."""
    ident = request.pop("id", None)
    request.pop("thread", None)
    op = request.pop("op")
    if op == HANG_ON:
        op, request = "hang", {}
    try:
        result = getattr(worker, "op_" + op)(**request)
    except ApiFailure as failure:
        send({"id": ident, "api": [failure.function, failure.exc_type]})
    except Exception:
        send({"id": ident, "bug": traceback.format_exc()})
    else:
        send({"id": ident, "ok": result})


def serve(worker, send):
    # type: (Worker, Any) -> None
    """Answer requests until the end of input.

    Each request names the suite thread that sent it.  The first thread
    seen is the session's own: its requests run here, on the worker's
    main thread, which owns the sub-interpreters.  Every other suite
    thread gets a worker thread of its own that runs its requests in
    order, so that requests of different suite threads really run
    concurrently (as concurrently as the GIL lets C API calls run).
    """
    lock = threading.Lock()

    def locked_send(message):
        # type: (Dict[str, Any]) -> None
        with lock:
            send(message)

    owner = None
    queues = {}  # type: Dict[Any, Any]
    for line in sys.stdin:
        request = json.loads(line)
        thread = request.get("thread")
        if owner is None:
            owner = thread
        if thread == owner:
            execute(worker, request, locked_send)
        else:
            if thread not in queues:
                queues[thread] = start_thread(worker, locked_send)
            queues[thread].put(request)
        # Do not keep the last request's objects alive in this frame.
        request = None


def start_thread(worker, send):
    # type: (Worker, Any) -> Any
    """Start a worker thread serving one suite thread; return its queue."""
    requests = queue.Queue()  # type: Any

    def run():
        # type: () -> None
        while True:
            execute(worker, requests.get(), send)

    thread = threading.Thread(target=run)
    thread.daemon = True
    thread.start()
    return requests


if __name__ == "__main__":
    main()
