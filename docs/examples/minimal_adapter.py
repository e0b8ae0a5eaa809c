"""The smallest complete implementation of the suite's Python protocol.

A worked example for docs/adapter.rst.  The "implementation" here is a
few dictionaries: code objects are Python objects, every slot lives in a
dict, and no optional capability is declared, so the suite runs the
storage, index and free-function tests and reports the rest as not
applicable.  A real adapter forwards the same calls to the implementation
it wraps.  Run the suite against it from a checkout::

    PYTHONPATH=docs/examples pytest --pyargs coextra_conformance \
        --coextra-impl=minimal_adapter:implementation

meta_tests/test_docs_ext.py runs it.
"""

from __future__ import annotations

from coextra_conformance.adapter import (
    MIN_INDICES,
    ApiError,
    Capability,
    FreeAction,
    FreeCall,
    FreeFunc,
    Handle,
    Hook,
    HookCall,
)


class Code:
    """A code object: flags, nested code objects and the slots."""

    def __init__(self, flags: int, nested: list[Code]) -> None:
        """Make a code object holding one reference."""
        self.refcnt = 1
        self.flags = flags
        self.nested = nested
        self.slots: dict[int, int] = {}


class Interpreter:
    """An interpreter: which indices exist, with their free functions."""

    def __init__(self) -> None:
        """Make an interpreter with no index allocated."""
        self.free: dict[int, FreeFunc | None] = {}


class MinimalSession:
    """One test's session; see coextra_conformance.adapter.Session."""

    def __init__(self) -> None:
        """Open a session on a fresh interpreter."""
        self._main = Interpreter()
        self._free_calls: list[FreeCall] = []

    @property
    def main(self) -> Handle:
        """The only interpreter (no Capability.INTERPRETERS)."""
        return self._main

    # -- object model -----------------------------------------------------

    def new_code(
        self, interp: Handle, *, nested: int = 0, flags: int = 0
    ) -> Handle:
        """Construct a code object with ``nested`` code constants."""
        inner = [Code(0, []) for _ in range(nested)]
        # No inline storage exists here, so the flag is never set, and
        # a caller cannot set it either (R-FLAG-7).
        return Code(flags & ~0x20000000, inner)

    def nested(self, code: Handle) -> list[Handle]:
        """Return new references to the nested code objects."""
        assert isinstance(code, Code)
        for inner in code.nested:
            inner.refcnt += 1
        return list(code.nested)

    def new_non_code(self, interp: Handle) -> Handle:
        """Return an object that is not a code object."""
        return object()

    def drop(self, obj: Handle) -> None:
        """Release a reference; destroy the code object at zero."""
        if not isinstance(obj, Code):
            return
        obj.refcnt -= 1
        if obj.refcnt > 0:
            return
        # Ascending index order at destruction (R-FREE-7).
        for index in sorted(obj.slots):
            self._call_free(index, obj.slots.pop(index))
        for inner in obj.nested:
            self.drop(inner)

    def code_id(self, code: Handle) -> int:
        """Identity of a code object."""
        return id(code)

    def co_flags(self, code: Handle) -> int:
        """Return the code object's flags."""
        assert isinstance(code, Code)
        return code.flags

    # -- the API of the PEP -------------------------------------------------

    def request_index(self, interp: Handle, free: FreeFunc | None) -> int:
        """Return the lowest free index (R-INDEX-1, R-INDEX-6)."""
        for index in range(MIN_INDICES):
            if index not in self._main.free:
                self._main.free[index] = free
                return index
        raise ApiError("PyUnstable_Eval_RequestCodeExtraIndex", "RuntimeError")

    def _check(self, function: str, code: Handle, index: int) -> Code:
        """Reject a non-code object or an unallocated index."""
        if not isinstance(code, Code) or index not in self._main.free:
            raise ApiError(function, "SystemError")
        return code

    def get_extra(self, interp: Handle, code: Handle, index: int) -> int:
        """Read a slot; an unset slot reads 0 (R-STORE-1)."""
        checked = self._check("PyUnstable_Code_GetExtra", code, index)
        return checked.slots.get(index, 0)

    def get_extra_on_error(
        self, interp: Handle, code: Handle, index: int
    ) -> tuple[str | None, int]:
        """Call Get expecting an error; the output word is cleared."""
        try:
            self.get_extra(interp, code, index)
        except ApiError as exc:
            return exc.exc_type, 0
        raise AssertionError("PyUnstable_Code_GetExtra succeeded")

    def set_extra(
        self, interp: Handle, code: Handle, index: int, value: int
    ) -> None:
        """Write a slot, then free the value it replaced (R-FREE-9)."""
        checked = self._check("PyUnstable_Code_SetExtra", code, index)
        old = checked.slots.get(index, 0)
        if old == value:
            return  # re-storing frees nothing (R-FREE-5)
        if value:
            checked.slots[index] = value
        else:
            del checked.slots[index]
        if old:
            self._call_free(index, old)

    def _call_free(self, index: int, value: int) -> None:
        """Run the recording free function of ``index`` on ``value``."""
        free = self._main.free[index]
        if free is None:
            return  # a NULL free function is never called (R-INDEX-5)
        result: int | None = None
        error = None
        try:
            if free.action is FreeAction.GET:
                result = self.get_extra(self._main, free.code, free.index)
            elif free.action is FreeAction.SET:
                self.set_extra(self._main, free.code, free.index, free.value)
                result = 0
            elif free.action is FreeAction.NEW_CODE:
                self.drop(self.new_code(self._main))
                result = 0
        except ApiError as exc:
            error = exc.exc_type
        self._free_calls.append(FreeCall(free.tag, value, result, error))

    # -- observation --------------------------------------------------------

    def take_free_calls(self) -> list[FreeCall]:
        """Return and forget the recorded free calls."""
        calls, self._free_calls = self._free_calls, []
        return calls

    def take_hook_calls(self) -> list[HookCall]:
        """No hooks (no Capability.HOOKS): nothing is ever recorded."""
        return []

    def take_unraisable(self) -> list[str]:
        """Nothing is ever reported unraisable without hooks."""
        return []

    def pending_error(self) -> str | None:
        """Errors are raised as ApiError, so none is ever left pending."""
        return None

    def close(self) -> None:
        """Forget the interpreter; nothing outlives the session."""
        self._main = Interpreter()

    # -- capabilities this implementation does not declare ------------------
    # The suite never calls these (their tests are not applicable); they
    # exist because the protocol names them.

    def new_interpreter(self) -> Handle:
        """Not offered (Capability.INTERPRETERS)."""
        raise NotImplementedError

    def end_interpreter(self, interp: Handle) -> None:
        """Not offered (Capability.FINALIZE)."""
        raise NotImplementedError

    def copy_code(self, interp: Handle, code: Handle, how: str) -> Handle:
        """Not offered (Capability.COPY)."""
        raise NotImplementedError

    def release_index(self, interp: Handle, index: int) -> None:
        """Not offered (Capability.RELEASE)."""
        raise NotImplementedError

    def add_hook(self, interp: Handle, hook: Hook) -> int:
        """Not offered (Capability.HOOKS)."""
        raise NotImplementedError

    def remove_hook(self, interp: Handle, hook_id: int) -> None:
        """Not offered (Capability.HOOKS)."""
        raise NotImplementedError

    def has_inline_extra(self, code: Handle) -> bool:
        """Not offered (Capability.INLINE_FLAG)."""
        raise NotImplementedError

    def extra_bytes(self, code: Handle) -> int:
        """Not offered (Capability.STORAGE_SIZE)."""
        raise NotImplementedError

    def sizeof(self, code: Handle) -> int:
        """Not offered (Capability.SIZEOF)."""
        raise NotImplementedError

    def fail_allocations(self, after: int, count: int = 1) -> None:
        """Not offered (Capability.ALLOC_FAILURE)."""
        raise NotImplementedError


class MinimalImplementation:
    """What ``--coextra-impl=minimal_adapter:implementation`` finds."""

    name = "minimal-python-example"
    version = "1.0"
    capabilities: frozenset[Capability] = frozenset()
    in_process = True

    def open_session(self) -> MinimalSession:
        """Return a session with a fresh interpreter."""
        return MinimalSession()


implementation = MinimalImplementation()
