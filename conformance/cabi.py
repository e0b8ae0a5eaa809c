"""Drive any library that exports the suite's C ABI (``abi/coextra_abi.h``).

The loader uses cffi in ABI mode, so no compiler is needed: the
declarations come from the header shipped in this package, read at run
time with its preprocessor lines removed (one source for C and Python).

* :func:`load_library` opens a shared library and reads its table;
* :func:`from_table_address` wraps a table that some other module already
  holds (a cffi API-mode extension such as the reference implementation).

Both return an :class:`Implementation` whose sessions implement
:class:`~.adapter.Session` over the table.  cffi releases the GIL around
every C call, so a session used from several threads really runs the
library concurrently; the Python-side state (logs, handle sets) is kept
under locks.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cffi

from .adapter import (
    ApiError,
    Capability,
    FreeAction,
    FreeCall,
    FreeFunc,
    Handle,
    Hook,
    HookAction,
    HookCall,
    PythonView,
)

__all__ = [
    "HEADER",
    "LoadError",
    "TableImplementation",
    "TableSession",
    "abi_constants",
    "abi_ffi",
    "from_table_address",
    "load_library",
]

#: The C ABI header shipped with the package.
HEADER = Path(__file__).with_name("abi") / "coextra_abi.h"

#: Names of the PEP's C functions, for ApiError messages.
_PEP_NAMES = {
    "request_index": "PyUnstable_Eval_RequestCodeExtraIndex",
    "release_index": "PyUnstable_Eval_ReleaseCodeExtraIndex",
    "get_extra": "PyUnstable_Code_GetExtra",
    "set_extra": "PyUnstable_Code_SetExtra",
    "add_hook": "PyUnstable_Code_AddConstructorHook",
    "remove_hook": "PyUnstable_Code_RemoveConstructorHook",
    "has_inline_extra": "PyUnstable_Code_HasInlineExtra",
    "compare_exchange_extra": "PyUnstable_Code_CompareExchangeExtra",
}

#: Table entries appended by each ABI minor version, and the capability
#: that needs them; a table too short to hold an entry lacks it.
_MINOR_ENTRIES: dict[str, Capability] = {
    "compare_exchange_extra": Capability.COMPARE_EXCHANGE,
    "live_blocks": Capability.LIVE_BLOCKS,
}

#: Capabilities that no ABI bit declares.  The loader gives every table
#: PENDING_ERROR (set_error and take_error are mandatory entries), and no
#: table PYTHON_CODE (the ABI has no Python-level code objects).
NO_ABI_BIT = frozenset(
    {
        Capability.PENDING_ERROR,
        Capability.PYTHON_CODE,
        Capability.NATIVE_THREADS,
    }
)

#: Free functions are told only the value, so each tag gets its own C
#: function (FreeFunc docs); tags run from 0 to NUM_FREE_TAGS - 1.
NUM_FREE_TAGS = 16

#: Primed into GetExtra's output word before a call expected to fail, so
#: the caller can see whether the implementation cleared it (R-STORE-10).
_SENTINEL = 0x5EED5EED

_ERROR_BUF = 128

_DEFINE = re.compile(r"^\s*#\s*define\s+(COEXTRA_\w+)\s+(.+?)\s*$")
_NUMBER = re.compile(
    r"^\(?\s*(0[xX][0-9a-fA-F]+|\d+)[uUlL]*"
    r"(?:\s*<<\s*(\d+))?\s*\)?$"
)


class LoadError(Exception):
    """A library cannot be used as a coextra implementation."""


def _header_text() -> str:
    return HEADER.read_text(encoding="utf-8")


def header_to_cdef(text: str) -> str:
    """Return the header's declarations in a form cffi's cdef accepts.

    Preprocessor lines are dropped, and so is everything under
    ``#ifdef __cplusplus`` (the ``extern "C"`` wrapper).  Comments stay:
    cffi ignores them.
    """
    out: list[str] = []
    skipping: list[bool] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            directive = stripped[1:].strip()
            if directive.startswith("if"):
                skipping.append(directive == "ifdef __cplusplus")
            elif directive.startswith("endif") and skipping:
                skipping.pop()
            elif directive.startswith("else") and skipping:
                skipping[-1] = not skipping[-1]
            continue
        if any(skipping):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def abi_constants(text: str | None = None) -> dict[str, int]:
    """Return the integer ``COEXTRA_*`` macros of the header.

    ``text`` is header source to parse instead of the shipped header.
    """
    if text is None:
        return dict(_shipped_constants())
    constants: dict[str, int] = {}
    for line in text.splitlines():
        match = _DEFINE.match(line)
        if match is None:
            continue
        number = _NUMBER.match(match.group(2))
        if number is None:
            continue
        value = int(number.group(1), 0)
        if number.group(2) is not None:
            value <<= int(number.group(2))
        constants[match.group(1)] = value
    return constants


@functools.cache
def _shipped_constants() -> dict[str, int]:
    return abi_constants(_header_text())


_FFI: cffi.FFI | None = None
_FFI_LOCK = threading.Lock()


def abi_ffi() -> cffi.FFI:
    """Return the process-wide FFI holding the ABI declarations."""
    global _FFI
    with _FFI_LOCK:
        if _FFI is None:
            ffi = cffi.FFI()
            ffi.cdef(header_to_cdef(_header_text()))
            _FFI = ffi
        return _FFI


def _text(chars: Any) -> str:
    """Return a C string (``char *`` or ``char[]``) as str."""
    raw = abi_ffi().string(chars)
    return raw.decode() if isinstance(raw, bytes) else raw


def _capabilities(mask: int, table: Any) -> frozenset[Capability]:
    constants = abi_constants()
    caps = set()
    for cap in Capability:
        bit = constants.get(f"COEXTRA_CAP_{cap.name}")
        if bit is not None and mask & bit:
            caps.add(cap)
    # Every table has set_error and take_error, so the adapter can leave
    # an exception pending and let free functions observe it.
    caps.add(Capability.PENDING_ERROR)
    for entry, cap in _MINOR_ENTRIES.items():
        if not _has_entry(table, entry):
            caps.discard(cap)
    return frozenset(caps)


def _has_entry(table: Any, entry: str) -> bool:
    """Tell whether a (possibly older, shorter) table sets ``entry``."""
    ffi = abi_ffi()
    end = ffi.offsetof("coextra_table", entry) + ffi.sizeof("void *")
    return int(table.size) >= end and getattr(table, entry) != ffi.NULL


# -- handles ------------------------------------------------------------


class _Interp:
    """An interpreter handle; opaque to the suite."""

    __slots__ = ("__weakref__", "ended", "ptr")

    def __init__(self, ptr: Any) -> None:
        self.ptr = ptr
        self.ended = False

    def __repr__(self) -> str:
        state = " ended" if self.ended else ""
        return (
            f"<interp {int(abi_ffi().cast('uintptr_t', self.ptr)):#x}{state}>"
        )


class _Obj:
    """An object handle holding one reference; opaque to the suite."""

    __slots__ = ("__weakref__", "dropped", "ptr")

    def __init__(self, ptr: Any) -> None:
        self.ptr = ptr
        self.dropped = False

    def __repr__(self) -> str:
        state = " dropped" if self.dropped else ""
        return (
            f"<object {int(abi_ffi().cast('uintptr_t', self.ptr)):#x}{state}>"
        )


# -- recording free functions ----------------------------------------------
#
# cffi callbacks are process-wide and kept alive for the process: a tag
# always maps to the same C function pointer, and _FREE_SPECS says what
# that function currently does and which session records it.

_FREE_SPECS: dict[int, tuple[FreeFunc, TableSession]] = {}
_FREE_LOCK = threading.Lock()
_FREE_CALLBACKS: dict[int, Any] = {}


def _free_callback(tag: int) -> Any:
    with _FREE_LOCK:
        callback = _FREE_CALLBACKS.get(tag)
        if callback is None:
            ffi = abi_ffi()

            def trampoline(value: Any) -> None:
                _run_free(tag, int(ffi.cast("uintptr_t", value)))

            callback = ffi.callback(
                "coextra_freefunc", trampoline, onerror=_callback_error
            )
            _FREE_CALLBACKS[tag] = callback
        return callback


def _callback_error(exc_type: Any, value: Any, tb: Any) -> None:
    # An exception inside a callback is a bug of this adapter or of the
    # test; keep it so that the session can raise it at the next
    # take_free_calls/take_hook_calls instead of losing it in C.
    _CALLBACK_ERRORS.append(value)


_CALLBACK_ERRORS: list[BaseException] = []


def _run_free(tag: int, value: int) -> None:
    with _FREE_LOCK:
        spec, session = _FREE_SPECS[tag]
    session._on_free(spec, value)


# -- recording hooks ---------------------------------------------------------


class _HookState:
    """What the C hook's ``arg`` points to."""

    def __init__(
        self, session: TableSession, interp: _Interp, hook: Hook
    ) -> None:
        self.session = session
        self.interp = interp
        self.hook = hook
        # Re-entrancy guard of NEW_CODE, per thread: another thread may
        # be constructing in the same hook at the same time.
        self.inside = threading.local()
        #: The cffi handle passed to C as ``arg``; set by add_hook.
        self.handle: Any = None


_HOOK_CALLBACK: Any = None


def _hook_callback() -> Any:
    global _HOOK_CALLBACK
    with _FREE_LOCK:
        if _HOOK_CALLBACK is None:
            ffi = abi_ffi()

            def trampoline(code: Any, arg: Any) -> int:
                state: _HookState = ffi.from_handle(arg)
                return state.session._on_hook(state, code)

            _HOOK_CALLBACK = ffi.callback(
                "coextra_hook", trampoline, error=-1, onerror=_callback_error
            )
        return _HOOK_CALLBACK


# -- implementation and session ---------------------------------------------


class TableImplementation:
    """An :class:`~.adapter.Implementation` backed by a C ABI table."""

    in_process = True

    def __init__(self, table: Any, keepalive: object, origin: str) -> None:
        """Wrap ``table``; ``keepalive`` keeps its code loaded."""
        self._table = table
        self._keepalive = keepalive
        self.origin = origin
        self.name = _text(table.name)
        self.version = _text(table.version)
        self.capabilities: frozenset[Capability] = _capabilities(
            int(table.capabilities), table
        )

    def __repr__(self) -> str:
        """Name the implementation and where it was loaded from."""
        return f"<{self.name} {self.version} from {self.origin}>"

    def open_session(self) -> TableSession:
        """Return a session with a fresh main interpreter."""
        return TableSession(self)

    def live_blocks(self) -> int:
        """Return the heap blocks the library holds (ABI 1.1)."""
        if Capability.LIVE_BLOCKS not in self.capabilities:
            raise NotImplementedError(
                f"{self.name} does not declare capability 'live-blocks'"
            )
        return int(self._table.live_blocks())


class TableSession:
    """A :class:`~.adapter.Session` over a C ABI table."""

    def __init__(self, impl: TableImplementation) -> None:
        """Open a session: create its main interpreter."""
        self._impl = impl
        self._ffi = abi_ffi()
        self._t = impl._table
        self._lock = threading.RLock()
        self._objects: dict[int, _Obj] = {}
        self._interps: list[_Interp] = []
        self._hook_states: list[_HookState] = []
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
            return _text(buf)
        return None

    def _fail(self, function: str) -> ApiError:
        return ApiError(_PEP_NAMES.get(function, function), self._take_error())

    def _make_interp(self) -> _Interp:
        ptr = self._t.new_interpreter()
        if ptr == self._ffi.NULL:
            raise self._fail("new_interpreter")
        interp = _Interp(ptr)
        with self._lock:
            self._interps.append(interp)
        return interp

    def _wrap(self, ptr: Any, function: str) -> _Obj:
        if ptr == self._ffi.NULL:
            raise self._fail(function)
        obj = _Obj(ptr)
        with self._lock:
            self._objects[id(obj)] = obj
        return obj

    @staticmethod
    def _interp(interp: Handle) -> Any:
        if not isinstance(interp, _Interp):
            raise TypeError(f"not an interpreter handle: {interp!r}")
        if interp.ended:
            raise ValueError(f"interpreter already ended: {interp!r}")
        return interp.ptr

    @staticmethod
    def _obj(obj: Handle) -> Any:
        if not isinstance(obj, _Obj):
            raise TypeError(f"not an object handle: {obj!r}")
        if obj.dropped:
            raise ValueError(f"object already dropped: {obj!r}")
        return obj.ptr

    def _raise_callback_errors(self) -> None:
        if _CALLBACK_ERRORS:
            error = _CALLBACK_ERRORS.pop(0)
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
        assert isinstance(interp, _Interp)
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
        assert isinstance(obj, _Obj)
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
            with _FREE_LOCK:
                _FREE_SPECS[free.tag] = (free, self)
            func = _free_callback(free.tag)
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
        assert isinstance(interp, _Interp)
        state = _HookState(self, interp, hook)
        handle = self._ffi.new_handle(state)
        with self._lock:
            # The handle must outlive any construction that may still be
            # calling the hook, so it is kept until the session closes.
            self._hook_states.append(state)
            state.handle = handle
        with self._lock:
            # Under the session lock so that the id -> tag table is
            # updated with the registration, as the actions read it.
            hook_id = int(self._t.add_hook(ptr, _hook_callback(), handle))
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
        assert isinstance(obj, _Obj)
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
            names.append(_text(buf))
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
        with _FREE_LOCK:
            for tag in [t for t, (_, s) in _FREE_SPECS.items() if s is self]:
                del _FREE_SPECS[tag]

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
        result: int | None = None
        error: str | None = None
        interp = spec.interp if spec.interp is not None else self._main
        try:
            if value == 0:
                pass  # A NULL call is only recorded (see FreeAction).
            elif spec.action is FreeAction.GET:
                result = self.get_extra(interp, spec.code, spec.index)
            elif spec.action is FreeAction.SET:
                self.set_extra(interp, spec.code, spec.index, spec.value)
                result = 0
            elif spec.action is FreeAction.NEW_CODE:
                ptr = self._t.new_code(self._main.ptr, 0, 0)
                if ptr == self._ffi.NULL:
                    raise self._fail("new_code")
                self._t.drop(ptr)
                result = 0
            elif spec.action is FreeAction.CHECK_ERROR:
                pending = self._take_error()
                result = 0 if pending is None else 1
                if pending is not None:
                    self._t.set_error(pending.encode())  # as found
            elif spec.action is FreeAction.SET_ERROR:
                self._t.set_error(b"RuntimeError")
        except ApiError as exc:
            error = exc.exc_type
        entry[0] = FreeCall(spec.tag, value, result, error)

    def _on_hook(self, state: _HookState, code: Any) -> int:
        hook = state.hook
        call = HookCall(hook.tag, int(self._t.code_id(code)))
        with self._lock:
            self._hook_log.append(call)
        if hook.action is HookAction.FAIL:
            self._t.set_error(b"RuntimeError")
            return -1
        if hook.action is HookAction.FAIL_WITHOUT_EXCEPTION:
            return -1
        if hook.action is HookAction.SET_EXTRA:
            word = self._ffi.cast("void *", hook.value)
            # On failure the error stays pending: the implementation
            # reports it as unraisable.
            return int(
                self._t.set_extra(state.interp.ptr, code, hook.index, word)
            )
        if hook.action is HookAction.NEW_CODE:
            if getattr(state.inside, "active", False):
                return 0
            state.inside.active = True
            try:
                ptr = self._t.new_code(state.interp.ptr, 0, 0)
            finally:
                state.inside.active = False
            if ptr == self._ffi.NULL:
                return -1
            self._t.drop(ptr)
        elif hook.action is HookAction.ADD_HOOK:
            with self._lock:
                tags = self._hook_tags.get(id(state.interp), {})
                present = hook.value in tags.values()
            if not present:
                try:
                    self.add_hook(state.interp, Hook(hook.value))
                except ApiError as exc:
                    self._t.set_error((exc.exc_type or "SystemError").encode())
                    return -1
        elif hook.action is HookAction.REMOVE_HOOK:
            with self._lock:
                tags = self._hook_tags.get(id(state.interp), {})
                ids = [i for i, tag in tags.items() if tag == hook.value]
            for other in ids:
                try:
                    self.remove_hook(state.interp, other)
                except ApiError as exc:
                    self._t.set_error((exc.exc_type or "SystemError").encode())
                    return -1
        return 0


# -- loading --------------------------------------------------------------


#: The last entry of each minor version of ABI 1, in order.  A table
#: must reach at least the first; entries past its size are absent.
_LAST_ENTRY_OF_MINOR = (
    "take_unraisable",
    "compare_exchange_extra",
    "live_blocks",
)

#: Optional entries of later minor versions and the capability that
#: announces each.
_OPTIONAL_ENTRIES = _MINOR_ENTRIES


def _entry_end(name: str) -> int:
    ffi = abi_ffi()
    return int(ffi.offsetof("coextra_table", name)) + ffi.sizeof("void *")


def _check_table(table: Any, origin: str) -> None:
    ffi = abi_ffi()
    expected = abi_constants()["COEXTRA_ABI_VERSION"]
    version = int(table.abi_version)
    if version != expected:
        raise LoadError(
            f"{origin}: C ABI version {version}, but this suite speaks "
            f"version {expected}; rebuild the library against the "
            f"coextra_abi.h shipped with this suite"
        )
    # Minor versions only append entries: a table from an older minor
    # version is shorter, and the entries it lacks count as absent.
    size = int(table.size)
    # Minor versions append entries: any size from the first minor
    # version's table on is fine, larger ones too (newer libraries).
    ends = [_entry_end(name) for name in _LAST_ENTRY_OF_MINOR]
    if size not in ends and size < ffi.sizeof("coextra_table"):
        raise LoadError(
            f"{origin}: table size {size} bytes, but ABI version "
            f"{expected} defines {', '.join(map(str, ends))} (minor "
            f"versions 0 to {len(ends) - 1}); rebuild the library against "
            f"the coextra_abi.h shipped with this suite"
        )
    mask = int(table.capabilities)
    bits = abi_constants()
    for name, cap in _OPTIONAL_ENTRIES.items():
        # A library built against an older minor version has a shorter
        # table and does not know the newer bits: declaring one whose
        # entry it lacks (past its size, or NULL) is an error.
        present = size >= _entry_end(name) and getattr(table, name) != ffi.NULL
        if mask & bits[f"COEXTRA_CAP_{cap.name}"] and not present:
            raise LoadError(
                f"{origin}: declares capability {cap.value!r} but its "
                f"table has no {name} entry; set the entry or clear "
                f"COEXTRA_CAP_{cap.name}"
            )


def from_table_address(address: int, keepalive: object) -> TableImplementation:
    """Wrap the table at ``address``.

    ``keepalive`` is whatever keeps the table's code loaded (an extension
    module, an ``ffi.dlopen`` result); it is held for the lifetime of the
    returned implementation.
    """
    ffi = abi_ffi()
    origin = f"table at {address:#x}"
    if not address:
        raise LoadError(f"{origin}: NULL table; pass coextra_get_table()")
    table = ffi.cast("const coextra_table *", address)
    _check_table(table, origin)
    return TableImplementation(table, keepalive, origin)


def load_library(path: str) -> TableImplementation:
    """Open the shared library at ``path`` and read its table."""
    ffi = abi_ffi()
    try:
        lib = ffi.dlopen(path)
    except OSError as exc:
        raise LoadError(f"{path}: cannot load: {exc}") from exc
    symbols: Any = lib  # cffi's Lib has the cdef's functions as attributes
    try:
        get_table: Callable[[], Any] = symbols.coextra_get_table
    except AttributeError as exc:
        raise LoadError(
            f"{path}: no symbol coextra_get_table; export "
            f"'const coextra_table *coextra_get_table(void)'"
        ) from exc
    table = get_table()
    if table == ffi.NULL:
        raise LoadError(f"{path}: coextra_get_table() returned NULL")
    _check_table(table, path)
    return TableImplementation(table, lib, path)
