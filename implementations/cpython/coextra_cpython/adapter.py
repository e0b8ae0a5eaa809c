"""The suite's view of a stock CPython 3.6-3.15 (or a PEP 9999 build).

pytest runs on the host Python; the interpreter under test runs
``worker.py`` in a separate process and calls the real co_extra API
through a small C extension compiled against it.  Every session gets a
fresh worker, because stock CPython never gives an index back: tests
sharing a process would see each other's indices.  The next worker is
started while the current session runs, so a session usually starts
without waiting.

Select the interpreter with ``COEXTRA_PYTHON`` (a command such as
``python3.6``, or a path); the default is ``python3``.  A request that gets
no answer within ``COEXTRA_REQUEST_TIMEOUT`` seconds (default 300) means
the worker hung: it is killed, and the test reported as ``timeout`` with
the request and the stacks of the worker's threads.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

from coextra_conformance.adapter import (
    ApiError,
    Capability,
    FreeCall,
    FreeFunc,
    HammerReport,
    HammerThread,
    Handle,
    Hook,
    HookCall,
    PythonView,
)

from . import _build
from ._worker import DEFAULT_REQUEST_TIMEOUT, ApiFailure, Worker

#: The environment variable naming the interpreter under test.
ENV_VAR = "COEXTRA_PYTHON"

#: The environment variable setting the seconds one request may take.
TIMEOUT_VAR = "COEXTRA_REQUEST_TIMEOUT"


def request_timeout() -> float:
    """Return the per-request time limit from COEXTRA_REQUEST_TIMEOUT.

    Raises AdapterLoadError (one line) for a value that is not a
    positive number of seconds.
    """
    text = os.environ.get(TIMEOUT_VAR, "").strip()
    if not text:
        return DEFAULT_REQUEST_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise _build.AdapterLoadError(
            f"{TIMEOUT_VAR}={text!r} is not a positive number of seconds; "
            f"set it to one (such as 300) or unset it for the default "
            f"({DEFAULT_REQUEST_TIMEOUT:g})"
        )
    return seconds


#: Non-NULL word written into the output word of Get before every call, so
#: that the suite sees whether Get wrote *extra (R-STORE-1, R-STORE-10).
_PRIME = 0x5EAF00D


@dataclass(frozen=True)
class Ref:
    """An opaque handle to an object living in the worker."""

    kind: str
    number: int


#: The only interpreter a session has: the worker's main interpreter.
MAIN = Ref("interpreter", 0)


class CPythonSession:
    """One test's session: one worker process, its main interpreter."""

    def __init__(self, worker: Worker) -> None:
        """Wrap a worker whose handshake has been read."""
        self._worker = worker

    # -- plumbing ----------------------------------------------------------

    def _call(self, op: str, **args: Any) -> Any:
        try:
            return self._worker.call(op, **args)
        except ApiFailure as failure:
            raise ApiError(failure.function, failure.exc_type) from None

    @staticmethod
    def _interp(interp: Handle) -> int:
        if not isinstance(interp, Ref) or interp.kind != "interpreter":
            raise TypeError(f"not an interpreter handle: {interp!r}")
        return interp.number

    @staticmethod
    def _number(handle: Handle) -> int:
        if not isinstance(handle, Ref) or handle.kind == "interpreter":
            raise TypeError(f"not an object handle: {handle!r}")
        return handle.number

    # -- object model ----------------------------------------------------

    @property
    def main(self) -> Handle:
        """The worker's main interpreter."""
        return MAIN

    def new_interpreter(self) -> Handle:
        """Create a sub-interpreter with Py_NewInterpreter()."""
        return Ref("interpreter", self._call("new_interpreter"))

    def new_own_gil_interpreter(self) -> Handle:
        """Create an interpreter with its own GIL (3.12+, PEP 684)."""
        return Ref("interpreter", self._call("new_interpreter", own_gil=True))

    def end_interpreter(self, interp: Handle) -> None:
        """Finalize a sub-interpreter with Py_EndInterpreter()."""
        self._call("end_interpreter", interp=self._interp(interp))

    def new_code(
        self, interp: Handle, *, nested: int = 0, flags: int = 0
    ) -> Handle:
        """Compile generated source with ``nested`` functions."""
        return Ref(
            "code",
            self._call(
                "new_code",
                interp=self._interp(interp),
                nested=nested,
                flags=flags,
            ),
        )

    def nested(self, code: Handle) -> list[Handle]:
        """Return the code objects among ``code``'s constants."""
        numbers = self._call("nested", code=self._number(code))
        return [Ref("code", n) for n in numbers]

    def copy_code(self, interp: Handle, code: Handle, how: str) -> Handle:
        """Copy with ``code.replace()`` or a marshal round trip."""
        return Ref(
            "code",
            self._call(
                "copy_code",
                interp=self._interp(interp),
                code=self._number(code),
                how=how,
            ),
        )

    def new_non_code(self, interp: Handle) -> Handle:
        """Return a fresh int object."""
        self._interp(interp)
        return Ref("object", self._call("new_non_code"))

    def drop(self, obj: Handle) -> None:
        """Delete the worker's reference, collecting cycles if needed."""
        self._call("drop", obj=self._number(obj))

    def drop_with_error(self, obj: Handle, exc_type: str) -> str | None:
        """Release ``obj`` with ``exc_type`` pending (a GIL build only).

        Returns the class name of the exception pending afterwards.
        """
        left = self._call(
            "drop_with_error", obj=self._number(obj), exc_type=exc_type
        )
        return None if left is None else str(left)

    def code_id(self, code: Handle) -> int:
        """Return the code object's address, as hooks record it."""
        return int(self._call("code_id", code=self._number(code)))

    # -- the API -------------------------------------------------------------

    def request_index(self, interp: Handle, free: FreeFunc | None) -> int:
        """Call RequestCodeExtraIndex with a recording free function."""
        spec = None
        if free is not None:
            spec = {
                "tag": free.tag,
                "action": free.action.value,
                "code": None if free.code is None else self._number(free.code),
                "index": free.index,
                "value": free.value,
            }
        return int(
            self._call("request_index", interp=self._interp(interp), free=spec)
        )

    def release_index(self, interp: Handle, index: int) -> None:
        """PyUnstable_Eval_ReleaseCodeExtraIndex (PEP 9999 builds only)."""
        self._call("release_index", interp=self._interp(interp), index=index)

    def get_extra(self, interp: Handle, code: Handle, index: int) -> int:
        """Call GetExtra; returns what it wrote to ``*extra``.

        The output word starts as a non-NULL sentinel, so that a Get that
        succeeds without writing ``*extra`` (R-STORE-1) is visible.
        """
        return int(
            self._call(
                "get_extra",
                interp=self._interp(interp),
                code=self._number(code),
                index=index,
                prime=_PRIME,
            )
        )

    def get_extra_on_error(
        self, interp: Handle, code: Handle, index: int
    ) -> tuple[str | None, int]:
        """Call GetExtra expecting failure; see the protocol."""
        rc, exc_type, value = self._call(
            "get_extra_on_error",
            interp=self._interp(interp),
            code=self._number(code),
            index=index,
            prime=_PRIME,
        )
        if rc >= 0:
            raise AssertionError(
                f"GetExtra(index={index}) succeeded (returned {rc}, "
                f"*extra={value:#x}) where it should fail"
            )
        return exc_type, int(value)

    def set_extra(
        self, interp: Handle, code: Handle, index: int, value: int
    ) -> None:
        """Call SetExtra."""
        self._call(
            "set_extra",
            interp=self._interp(interp),
            code=self._number(code),
            index=index,
            value=value,
        )

    def compare_exchange_extra(
        self,
        interp: Handle,
        code: Handle,
        index: int,
        expected: int,
        desired: int,
    ) -> tuple[bool, int]:
        """Call PyUnstable_Code_CompareExchangeExtra (patched 3.13).

        Returns whether it stored, and the value it left in ``*expected``
        (the current value when it did not store).
        """
        rc, current = self._call(
            "compare_exchange_extra",
            interp=self._interp(interp),
            code=self._number(code),
            index=index,
            expected=expected,
            desired=desired,
        )
        return bool(rc), int(current)

    def add_hook(self, interp: Handle, hook: Hook) -> int:
        """Add a code watcher (3.12+) or a PEP constructor hook."""
        return int(
            self._call(
                "add_hook",
                interp=self._interp(interp),
                tag=hook.tag,
                action=hook.action.value,
                index=hook.index,
                value=hook.value,
            )
        )

    def remove_hook(self, interp: Handle, hook_id: int) -> None:
        """Clear the watcher or remove the PEP hook."""
        self._call("remove_hook", interp=self._interp(interp), hook_id=hook_id)

    def has_inline_extra(self, code: Handle) -> bool:
        """PyUnstable_Code_HasInlineExtra (PEP 9999 builds only)."""
        return bool(self._call("has_inline_extra", code=self._number(code)))

    def hammer_extra(
        self,
        codes: list[Handle],
        index: int,
        *,
        threads: int,
        rounds: int,
        shared: bool,
    ) -> HammerReport:
        """Run the Set/Get loops in C on native threads of the worker.

        Sanitizer reports the worker wrote to stderr meanwhile (a
        ThreadSanitizer build) come back with the counts.
        """
        self._worker.sanitizer_reports()  # only this run's reports count
        rows = self._call(
            "hammer",
            codes=[self._number(c) for c in codes],
            index=index,
            threads=threads,
            rounds=rounds,
            shared=shared,
        )
        return HammerReport(
            threads=tuple(
                HammerThread(
                    set_errors=set_errors,
                    get_errors=get_errors,
                    wrong_reads=wrong,
                    first_wrong=(got, expected) if wrong else None,
                )
                for set_errors, get_errors, wrong, got, expected in rows
            ),
            sanitizer_reports=tuple(self._worker.sanitizer_reports()),
        )

    # -- observation -----------------------------------------------------

    def co_flags(self, code: Handle) -> int:
        """Return the code object's ``co_flags`` field as C code reads it.

        On stock CPython it equals ``code.co_flags``; the patched 3.13
        keeps ``CO_INLINE_EXTRA`` out of the Python attribute.
        """
        return int(self._call("co_flags", code=self._number(code)))

    def py_co_flags(self, code: Handle) -> int:
        """Return ``code.co_flags`` as Python code sees it."""
        return int(self._call("py_co_flags", code=self._number(code)))

    def python_view(self, code: Handle) -> PythonView:
        """Return ``co_flags``, ``hash()`` and ``marshal.dumps()`` of it."""
        seen = self._call("python_view", code=self._number(code))
        return PythonView(
            co_flags=int(seen["co_flags"]),
            hash=int(seen["hash"]),
            marshal=bytes.fromhex(seen["marshal"]),
        )

    def python_equal(self, a: Handle, b: Handle) -> bool:
        """Return ``a == b`` computed in the target interpreter."""
        return bool(
            self._call("python_equal", a=self._number(a), b=self._number(b))
        )

    def extra_bytes(self, code: Handle) -> int:
        """Count the co_extra pointer plus the block Set allocated."""
        return int(self._call("extra_bytes", code=self._number(code)))

    def sizeof(self, code: Handle) -> int:
        """Return ``sys.getsizeof(code)`` measured in the worker."""
        return int(self._call("sizeof", code=self._number(code)))

    def fail_allocations(self, after: int, count: int = 1) -> None:
        """Make CPython's allocators fail inside the next API calls.

        The worker wraps the "mem" and "object" allocator domains and
        counts only allocations made while an API call or a requested
        construction runs.
        """
        self._call("fail_allocations", after=after, count=count)

    def take_free_calls(self) -> list[FreeCall]:
        """Return the free calls recorded in C since the last take."""
        return [
            FreeCall(tag=tag, value=value, result=result, error=error)
            for tag, value, result, error in self._call("take_free_calls")
        ]

    def take_hook_calls(self) -> list[HookCall]:
        """Return the hook calls recorded in C since the last take."""
        return [
            HookCall(tag=tag, code_id=code_id)
            for tag, code_id in self._call("take_hook_calls")
        ]

    def take_unraisable(self) -> list[str]:
        """Return the classes seen by the worker's sys.unraisablehook."""
        return list(self._call("take_unraisable"))

    def pending_error(self) -> str | None:
        """Return an exception an API call left set while succeeding."""
        if self._worker.dead:
            # The crash was reported by the call during which it happened;
            # a dead interpreter has nothing pending.
            return None
        result = self._call("pending_error")
        return None if result is None else str(result)

    def close(self) -> None:
        """End the worker; its interpreter and objects go with it."""
        self._worker.close()

    # -- for the adapter's own tests -------------------------------------

    def worker_thread(self) -> int:
        """Return the ident of the worker thread that ran this request.

        For the adapter's own tests: requests of different calling
        threads must run on different worker threads.
        """
        return int(self._call("thread_ident"))

    def crash(self, how: str = "abort") -> None:
        """Kill the worker from inside (``abort`` or a signal number)."""
        self._call("crash", how=how)

    def hang(self) -> None:
        """Send a request the worker never answers (it blocks for good)."""
        self._call("hang")


class CPythonImplementation:
    """Stock CPython (or a PEP 9999 build) run out of process."""

    name = "cpython"
    in_process = False

    def __init__(self, interpreter: str | None = None) -> None:
        """Probe ``interpreter``, build the extension, start a worker.

        Raises AdapterLoadError with a one-line message when the
        interpreter is missing, not CPython, outside 3.6-3.15 without the
        PEP 9999 API, or when no C compiler can build the extension.
        """
        self.interpreter = interpreter or os.environ.get(ENV_VAR) or "python3"
        self.request_timeout = request_timeout()
        self.target = _build.probe(self.interpreter, _build.target_root())
        try:
            build_dir = _build.build(self.target)
        except _build.AdapterLoadError:
            if self.target.version[:2] > _build.SUPPORTED[1]:
                raise _build.AdapterLoadError(
                    _build.out_of_range(self.target)
                ) from None
            raise
        self._argv = _build.worker_command(self.target, build_dir)
        self._retired: list[Worker] = []
        self._spare: Worker | None = self._spawn()
        hello = self._spare.handshake()
        self.pep9999 = bool(hello["pep9999"])
        self.watchers = bool(hello["watchers"])
        self.functions: tuple[str, ...] = tuple(hello["functions"])
        #: False when the interpreter runs free-threaded, without a GIL.
        self.gil = bool(hello.get("gil", True))
        if not self.pep9999 and not (
            _build.SUPPORTED[0]
            <= self.target.version[:2]
            <= _build.SUPPORTED[1]
        ):
            self._spare.kill()
            raise _build.AdapterLoadError(_build.out_of_range(self.target))
        # "t" as in python3.13t: a free-threaded build, running without
        # the GIL (the worker runs with -I, so PYTHON_GIL cannot force it).
        self.version = (
            self.target.version_text
            + ("t" if not self.gil else "")
            + ("+pep9999" if self.pep9999 else "")
        )
        caps = {
            Capability.STORAGE_SIZE,
            Capability.SIZEOF,
            Capability.COPY,
            Capability.INTERPRETERS,
            Capability.FINALIZE,
            Capability.ALLOC_FAILURE,
            # The worker runs each suite thread's requests on a thread of
            # its own (main interpreter only), so they interleave as the
            # GIL lets them.
            Capability.THREADS,
            # hammer(): Set/Get loops in C on native threads.
            Capability.NATIVE_THREADS,
        }
        if self.watchers or self.pep9999:
            caps.add(Capability.HOOKS)
        if hello.get("own_gil"):
            # Py_NewInterpreterFromConfig with PyInterpreterConfig_OWN_GIL.
            caps.add(Capability.OWN_GIL)
        if self.gil:
            # drop_with_error destroys the object inside the call; on a
            # free-threaded build the main interpreter's code objects have
            # deferred reference counts and die only in a collection,
            # which cannot run with an exception pending.
            caps.add(Capability.PENDING_ERROR)
        if self.pep9999:
            # PYTHON_CODE only matters where there is a flag to hide
            # (R-FLAG-10); stock CPython has none.
            caps |= {
                Capability.RELEASE,
                Capability.INLINE_FLAG,
                Capability.PYTHON_CODE,
            }
        # CompareExchange (patched 3.13): declared only when the suite
        # defines the capability.
        compare_exchange = getattr(Capability, "COMPARE_EXCHANGE", None)
        if hello.get("compare_exchange") and compare_exchange is not None:
            caps.add(compare_exchange)
        self.capabilities = frozenset(caps)
        atexit.register(self.shutdown)

    def _spawn(self) -> Worker:
        # The command's name only: crash messages end up in committed
        # reports, which must not carry this machine's paths.
        name = os.path.basename(self.interpreter)
        label = f"{name} ({self.target.version_text})"
        return Worker(label, self._argv, self.request_timeout)

    def open_session(self) -> CPythonSession:
        """Return a session on a fresh worker; start the next one."""
        self._retired = [w for w in self._retired if not w.reap()]
        worker = self._spare
        if worker is None or worker.proc.poll() is not None:
            if worker is not None:
                worker.kill()
            worker = self._spawn()
        self._spare = self._spawn()
        worker.handshake()
        self._retired.append(worker)
        return CPythonSession(worker)

    def shutdown(self) -> None:
        """Stop every worker still running (registered with atexit)."""
        workers = list(self._retired)
        if self._spare is not None:
            workers.append(self._spare)
            self._spare = None
        for worker in workers:
            worker.close()
        for worker in workers:
            if not worker.reap(timeout=5):
                worker.kill()
        self._retired = []

    def describe(self) -> str:
        """One line for the report header."""
        api = "PEP 9999 API" if self.pep9999 else ", ".join(self.functions)
        where = self.target.executable
        if self.target.root is not None:
            where += f" in the root {self.target.root}"
        threading = "" if self.gil else "; free-threaded, GIL disabled"
        return (
            f"CPython {self.version} at {where} "
            f"({ENV_VAR}={self.interpreter}); {api}{threading}"
        )


def implementation() -> CPythonImplementation:
    """Entry point ``cpython``: the interpreter named by COEXTRA_PYTHON."""
    return CPythonImplementation()
