"""The C functions a table session registers: free functions and hooks.

cffi callbacks are process-wide and live as long as the process, so they
are made once and told at run time which session they record into.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..contract import FreeFunc, Hook
from .handles import InterpHandle
from .header import abi_ffi

if TYPE_CHECKING:
    from .session import TableSession

# -- recording free functions ----------------------------------------------
#
# cffi callbacks are process-wide and kept alive for the process: a tag
# always maps to the same C function pointer, and FREE_SPECS says what
# that function currently does and which session records it.

FREE_SPECS: dict[int, tuple[FreeFunc, TableSession]] = {}
FREE_LOCK = threading.Lock()
_FREE_CALLBACKS: dict[int, Any] = {}


def free_callback(tag: int) -> Any:
    """Return the C free function of ``tag``, made on first use."""
    with FREE_LOCK:
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
    CALLBACK_ERRORS.append(value)


CALLBACK_ERRORS: list[BaseException] = []


def _run_free(tag: int, value: int) -> None:
    with FREE_LOCK:
        spec, session = FREE_SPECS[tag]
    session._on_free(spec, value)


# -- recording hooks ---------------------------------------------------------


class HookState:
    """What the C hook's ``arg`` points to."""

    def __init__(
        self, session: TableSession, interp: InterpHandle, hook: Hook
    ) -> None:
        """Say which session, interpreter and hook the C hook serves."""
        self.session = session
        self.interp = interp
        self.hook = hook
        #: The cffi handle passed to C as ``arg``; set by add_hook.
        self.handle: Any = None


_HOOK_CALLBACK: Any = None


def hook_callback() -> Any:
    """Return the one C hook; its ``arg`` is a :class:`HookState`."""
    global _HOOK_CALLBACK
    with FREE_LOCK:
        if _HOOK_CALLBACK is None:
            ffi = abi_ffi()

            def trampoline(code: Any, arg: Any) -> int:
                state: HookState = ffi.from_handle(arg)
                return state.session._on_hook(state, code)

            _HOOK_CALLBACK = ffi.callback(
                "coextra_hook", trampoline, error=-1, onerror=_callback_error
            )
        return _HOOK_CALLBACK
