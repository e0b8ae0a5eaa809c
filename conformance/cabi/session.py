"""A session over a C ABI table: the suite's calls, made in C.

cffi releases the GIL around every C call, so a session used from several
threads really runs the library concurrently; the Python-side state
(logs, handle sets) is kept under locks.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..adapter import Capability, PythonView
from ..contract import (
    C_NAMES,
    NUM_FREE_TAGS,
    ApiError,
    FreeCall,
    FreeFunc,
    Handle,
    Hook,
    HookCall,
    run_free_action,
    run_hook_action,
)
from .callbacks import (
    CALLBACK_ERRORS,
    FREE_LOCK,
    FREE_SPECS,
    HookState,
    free_callback,
    hook_callback,
)
from .handles import InterpHandle, ObjHandle
from .header import abi_constants, abi_ffi, text

if TYPE_CHECKING:
    from .implementation import TableImplementation

#: Primed into GetExtra's output word before a call expected to fail, so
#: the caller can see whether the implementation cleared it (R-STORE-10).
_SENTINEL = 0x5EED5EED

_ERROR_BUF = 128


class TableSession:
    """A :class:`~.adapter.Session` over a C ABI table."""

    def __init__(self, impl: TableImplementation) -> None:
        """Open a session: create its main interpreter."""
        self._impl = impl
        self._ffi = abi_ffi()
        self._t = impl._table
        self._lock = threading.RLock()
        self._objects: dict[int, ObjHandle] = {}
        self._interps: list[InterpHandle] = []
        self._hook_states: list[HookState] = []
        #: Per thread: the hooks inside a NEW_CODE action (no recursion).
        self._local = threading.local()
        self._free_log: list[list[FreeCall | None]] = []
        self._hook_log: list[HookCall] = []
        #: Registered hooks per interpreter, hook id -> tag, for the
        #: ADD_HOOK and REMOVE_HOOK actions.
        self._hook_tags: dict[int, dict[int, int]] = {}
        self._closed = False
        # Reports and errors left by an earlier session belong to no
        # test: the unraisable queue and the error state are process-wide.
        self.take_unraisable()
        self._take_error()
        self._main = self._make_interp()

    # -- helpers ----------------------------------------------------------

    def _need(self, cap: Capability) -> None:
        if cap not in self._impl.capabilities:
            raise NotImplementedError(
                f"{self._impl.name} does not declare capability {cap.value!r}"
            )

    def _take_error(self) -> str | None:
        buf = self._ffi.new("char[]", _ERROR_BUF)
        if self._t.take_error(buf, _ERROR_BUF):
            return text(buf)
        return None

    def _fail(self, function: str) -> ApiError:
        return ApiError(C_NAMES.get(function, function), self._take_error())

    def _make_interp(self) -> InterpHandle:
        ptr = self._t.new_interpreter()
        if ptr == self._ffi.NULL:
            raise self._fail("new_interpreter")
        interp = InterpHandle(ptr)
        with self._lock:
            self._interps.append(interp)
        return interp

    def _wrap(self, ptr: Any, function: str) -> ObjHandle:
        if ptr == self._ffi.NULL:
            raise self._fail(function)
        obj = ObjHandle(ptr)
        with self._lock:
            self._objects[id(obj)] = obj
        return obj

    @staticmethod
    def _interp(interp: Handle) -> Any:
        if not isinstance(interp, InterpHandle):
            raise TypeError(f"not an interpreter handle: {interp!r}")
        if interp.ended:
            raise ValueError(f"interpreter already ended: {interp!r}")
        return interp.ptr

    @staticmethod
    def _obj(obj: Handle) -> Any:
        if not isinstance(obj, ObjHandle):
            raise TypeError(f"not an object handle: {obj!r}")
        if obj.dropped:
            raise ValueError(f"object already dropped: {obj!r}")
        return obj.ptr

    def _raise_callback_errors(self) -> None:
        if CALLBACK_ERRORS:
            error = CALLBACK_ERRORS.pop(0)
            raise RuntimeError("a C callback of the adapter failed") from error

    # -- object model -----------------------------------------------------

    @property
    def main(self) -> Handle:
        """The session's main interpreter."""
        return self._main

    def new_interpreter(self) -> Handle:
        """Create another interpreter."""
        self._need(Capability.INTERPRETERS)
        return self._make_interp()

    def new_own_gil_interpreter(self) -> Handle:
        """Create another interpreter with a lock of its own.

        A table that declares COEXTRA_CAP_OWN_GIL runs every interpreter
        in parallel with the others, so any new interpreter is one.
        """
        self._need(Capability.OWN_GIL)
        return self._make_interp()

    def end_interpreter(self, interp: Handle) -> None:
        """Finalize an interpreter."""
        self._need(Capability.FINALIZE)
        ptr = self._interp(interp)
        assert isinstance(interp, InterpHandle)
        interp.ended = True
        if self._t.end_interpreter(ptr) < 0:
            interp.ended = False
            raise self._fail("end_interpreter")
        with self._lock:
            # Finalization empties the interpreter's hook chain.
            self._hook_tags.pop(id(interp), None)

    def new_code(
        self, interp: Handle, *, nested: int = 0, flags: int = 0
    ) -> Handle:
        """Construct a code object in ``interp``."""
        ptr = self._t.new_code(self._interp(interp), nested, flags)
        return self._wrap(ptr, "new_code")

    def nested(self, code: Handle) -> list[Handle]:
        """Return handles to the nested code objects of ``code``."""
        ptr = self._obj(code)
        result: list[Handle] = []
        while True:
            inner = self._t.get_nested(ptr, len(result))
            if inner == self._ffi.NULL:
                # The end of the constants; an implementation may report
                # it with an error (IndexError), which is not ours.
                self._take_error()
                return result
            result.append(self._wrap(inner, "get_nested"))

    def copy_code(self, interp: Handle, code: Handle, how: str) -> Handle:
        """Copy ``code`` the way replace() or unmarshal does."""
        self._need(Capability.COPY)
        constants = abi_constants()
        modes = {
            "replace": constants["COEXTRA_COPY_REPLACE"],
            "marshal": constants["COEXTRA_COPY_MARSHAL"],
        }
        if how not in modes:
            raise ValueError(f"unknown copy mode {how!r}")
        ptr = self._t.copy_code(
            self._interp(interp), self._obj(code), modes[how]
        )
        return self._wrap(ptr, "copy_code")

    def new_non_code(self, interp: Handle) -> Handle:
        """Return an object that is not a code object."""
        ptr = self._t.new_non_code(self._interp(interp))
        return self._wrap(ptr, "new_non_code")

    def drop(self, obj: Handle) -> None:
        """Release the session's reference to ``obj``."""
        ptr = self._obj(obj)
        assert isinstance(obj, ObjHandle)
        with self._lock:
            if obj.dropped:
                raise ValueError(f"object already dropped: {obj!r}")
            obj.dropped = True
            self._objects.pop(id(obj), None)
        self._t.drop(ptr)

    def code_id(self, code: Handle) -> int:
        """Return the identity hooks record for ``code``."""
        return int(self._t.code_id(self._obj(code)))

    # -- the API of the PEP --------------------------------------------------

    def request_index(self, interp: Handle, free: FreeFunc | None) -> int:
        """PyUnstable_Eval_RequestCodeExtraIndex."""
        ptr = self._interp(interp)
        func: Any = self._ffi.NULL
        if free is not None:
            if not 0 <= free.tag < NUM_FREE_TAGS:
                raise ValueError(f"free tag out of range: {free.tag}")
            with FREE_LOCK:
                FREE_SPECS[free.tag] = (free, self)
            func = free_callback(free.tag)
        index = int(self._t.request_index(ptr, func))
        if index < 0:
            raise self._fail("request_index")
        return index

    def release_index(self, interp: Handle, index: int) -> None:
        """PyUnstable_Eval_ReleaseCodeExtraIndex."""
        self._need(Capability.RELEASE)
        if self._t.release_index(self._interp(interp), index) < 0:
            raise self._fail("release_index")

    def get_extra(self, interp: Handle, code: Handle, index: int) -> int:
        """PyUnstable_Code_GetExtra; return the value read."""
        out = self._ffi.new("void **")
        if (
            self._t.get_extra(
                self._interp(interp), self._obj(code), index, out
            )
            < 0
        ):
            raise self._fail("get_extra")
        return int(self._ffi.cast("uintptr_t", out[0]))

    def get_extra_on_error(
        self, interp: Handle, code: Handle, index: int
    ) -> tuple[str | None, int]:
        """Call Get expecting failure; return (exception, *extra after)."""
        out = self._ffi.new("void **")
        out[0] = self._ffi.cast("void *", _SENTINEL)
        rc = self._t.get_extra(
            self._interp(interp), self._obj(code), index, out
        )
        if rc >= 0:
            raise AssertionError(
                f"PyUnstable_Code_GetExtra unexpectedly succeeded "
                f"(index {index})"
            )
        return self._take_error(), int(self._ffi.cast("uintptr_t", out[0]))

    def set_extra(
        self, interp: Handle, code: Handle, index: int, value: int
    ) -> None:
        """PyUnstable_Code_SetExtra."""
        word = self._ffi.cast("void *", value)
        if (
            self._t.set_extra(
                self._interp(interp), self._obj(code), index, word
            )
            < 0
        ):
            raise self._fail("set_extra")

    def compare_exchange_extra(
        self,
        interp: Handle,
        code: Handle,
        index: int,
        expected: int,
        desired: int,
    ) -> tuple[bool, int]:
        """PyUnstable_Code_CompareExchangeExtra."""
        self._need(Capability.COMPARE_EXCHANGE)
        out = self._ffi.new("void **")
        out[0] = self._ffi.cast("void *", expected)
        rc = int(
            self._t.compare_exchange_extra(
                self._interp(interp),
                self._obj(code),
                index,
                out,
                self._ffi.cast("void *", desired),
            )
        )
        if rc < 0:
            raise self._fail("compare_exchange_extra")
        return rc == 1, int(self._ffi.cast("uintptr_t", out[0]))

    def add_hook(self, interp: Handle, hook: Hook) -> int:
        """PyUnstable_Code_AddConstructorHook."""
        self._need(Capability.HOOKS)
        ptr = self._interp(interp)
        assert isinstance(interp, InterpHandle)
        state = HookState(self, interp, hook)
        handle = self._ffi.new_handle(state)
        with self._lock:
            # The handle must outlive any construction that may still be
            # calling the hook, so it is kept until the session closes.
            self._hook_states.append(state)
            state.handle = handle
        with self._lock:
            # Under the session lock so that the id -> tag table is
            # updated with the registration, as the actions read it.
            hook_id = int(self._t.add_hook(ptr, hook_callback(), handle))
            if hook_id >= 0:
                self._hook_tags.setdefault(id(interp), {})[hook_id] = hook.tag
        if hook_id < 0:
            raise self._fail("add_hook")
        return hook_id

    def remove_hook(self, interp: Handle, hook_id: int) -> None:
        """PyUnstable_Code_RemoveConstructorHook."""
        self._need(Capability.HOOKS)
        ptr = self._interp(interp)
        with self._lock:
            rc = self._t.remove_hook(ptr, hook_id)
            if rc == 0:
                self._hook_tags.get(id(interp), {}).pop(hook_id, None)
        if rc < 0:
            raise self._fail("remove_hook")

    def has_inline_extra(self, code: Handle) -> bool:
        """PyUnstable_Code_HasInlineExtra."""
        self._need(Capability.INLINE_FLAG)
        rc = int(self._t.has_inline_extra(self._obj(code)))
        if rc < 0:
            raise self._fail("has_inline_extra")
        return rc != 0

    # -- observation ----------------------------------------------------------

    def co_flags(self, code: Handle) -> int:
        """Return the code object's co_flags."""
        return int(self._t.co_flags(self._obj(code)))

    def extra_bytes(self, code: Handle) -> int:
        """Bytes the code object spends on extra storage."""
        self._need(Capability.STORAGE_SIZE)
        size = int(self._t.extra_bytes(self._obj(code)))
        if size < 0:
            raise self._fail("extra_bytes")
        return size

    def sizeof(self, code: Handle) -> int:
        """Return what sys.getsizeof() would report."""
        self._need(Capability.SIZEOF)
        size = int(self._t.sizeof_code(self._obj(code)))
        if size < 0:
            raise self._fail("sizeof_code")
        return size

    def drop_with_error(self, obj: Handle, exc_type: str) -> str | None:
        """Drop ``obj`` with ``exc_type`` pending; return what is left."""
        ptr = self._obj(obj)
        assert isinstance(obj, ObjHandle)
        with self._lock:
            if obj.dropped:
                raise ValueError(f"object already dropped: {obj!r}")
            obj.dropped = True
            self._objects.pop(id(obj), None)
        self._t.set_error(exc_type.encode())
        self._t.drop(ptr)
        return self._take_error()

    def python_view(self, code: Handle) -> PythonView:
        """Not offered: the C ABI has no Python-level code objects."""
        raise NotImplementedError(
            f"{self._impl.name}: the C ABI has no Python-level code object"
        )

    def python_equal(self, a: Handle, b: Handle) -> bool:
        """Not offered: the C ABI has no Python-level code objects."""
        raise NotImplementedError(
            f"{self._impl.name}: the C ABI has no Python-level code object"
        )

    def fail_allocations(self, after: int, count: int = 1) -> None:
        """Make allocations fail."""
        self._need(Capability.ALLOC_FAILURE)
        self._t.fail_allocations(after, count)

    def take_free_calls(self) -> list[FreeCall]:
        """Return and forget the free calls recorded so far, in order."""
        self._raise_callback_errors()
        with self._lock:
            log, self._free_log = self._free_log, []
        return [entry[0] for entry in log if entry[0] is not None]

    def take_hook_calls(self) -> list[HookCall]:
        """Return and forget the hook calls recorded so far, in order."""
        self._raise_callback_errors()
        with self._lock:
            log, self._hook_log = self._hook_log, []
        return log

    def take_unraisable(self) -> list[str]:
        """Return and forget exception names reported unraisable."""
        buf = self._ffi.new("char[]", _ERROR_BUF)
        names: list[str] = []
        while self._t.take_unraisable(buf, _ERROR_BUF):
            names.append(text(buf))
        return names

    def pending_error(self) -> str | None:
        """Return (and clear) an exception left set, if any."""
        return self._take_error()

    def close(self) -> None:
        """Drop every handle and end the session's interpreters."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            objects = list(self._objects.values())
            self._objects.clear()
        # Objects first, newest first, so that code objects are
        # destroyed while their interpreters still exist.
        for obj in reversed(objects):
            if not obj.dropped:
                obj.dropped = True
                self._t.drop(obj.ptr)
        for interp in reversed(self._interps):
            if not interp.ended:
                interp.ended = True
                self._t.end_interpreter(interp.ptr)
        self._take_error()
        # Reports left untaken belong to no test (the next session drops
        # them anyway); taking them now also lets an implementation free
        # what it queued them in before its live blocks are counted.
        self.take_unraisable()
        with FREE_LOCK:
            for tag in [t for t, (_, s) in FREE_SPECS.items() if s is self]:
                del FREE_SPECS[tag]

    def __enter__(self) -> TableSession:
        """Use the session as a context manager."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the session."""
        self.close()

    # -- callbacks ----------------------------------------------------------

    def _on_free(self, spec: FreeFunc, value: int) -> None:
        # Reserve the log position first: the action may cause nested
        # free calls, which must appear after this one.
        entry: list[FreeCall | None] = [None]
        with self._lock:
            self._free_log.append(entry)
        entry[0] = run_free_action(self, spec, value)

    def _on_hook(self, state: HookState, code: Any) -> int:
        hook = state.hook
        call = HookCall(hook.tag, int(self._t.code_id(code)))
        with self._lock:
            self._hook_log.append(call)
        running: set[object] | None = getattr(self._local, "running", None)
        if running is None:
            running = self._local.running = set()
        failed = run_hook_action(
            self,
            state.interp,
            hook,
            ObjHandle(code),  # borrowed: the construction owns the reference
            running=running,
            key=id(state),
        )
        if failed is None:
            return 0
        if failed.exception is not None:
            self._t.set_error(failed.exception.encode())
        return -1

    # -- what the actions of free functions and hooks use -----------------

    def construct_and_drop(self, interp: Handle) -> None:
        """Construct one code object in ``interp`` and destroy it."""
        assert isinstance(interp, InterpHandle)
        ptr = self._t.new_code(interp.ptr, 0, 0)
        if ptr == self._ffi.NULL:
            raise self._fail("new_code")
        self._t.drop(ptr)

    def error_pending(self) -> bool:
        """Tell whether an exception is set; leave it as found."""
        pending = self._take_error()
        if pending is None:
            return False
        self._t.set_error(pending.encode())
        return True

    def set_error(self, exc_type: str) -> None:
        """Set an exception of class ``exc_type`` in this thread."""
        self._t.set_error(exc_type.encode())

    def hook_ids(self, interp: Handle, tag: int) -> list[int]:
        """Return the ids of the hooks tagged ``tag`` in ``interp``."""
        with self._lock:
            tags = self._hook_tags.get(id(interp), {})
            return [i for i, t in tags.items() if t == tag]
