"""The handles a table session gives the suite: opaque to it."""

from __future__ import annotations

from typing import Any

from .header import abi_ffi


class InterpHandle:
    """An interpreter handle; opaque to the suite."""

    __slots__ = ("__weakref__", "ended", "ptr")

    def __init__(self, ptr: Any) -> None:
        """Wrap the implementation's interpreter pointer."""
        self.ptr = ptr
        self.ended = False

    def __repr__(self) -> str:
        """Show the address and whether the interpreter ended."""
        state = " ended" if self.ended else ""
        return (
            f"<interp {int(abi_ffi().cast('uintptr_t', self.ptr)):#x}{state}>"
        )


class ObjHandle:
    """An object handle holding one reference; opaque to the suite."""

    __slots__ = ("__weakref__", "dropped", "ptr")

    def __init__(self, ptr: Any) -> None:
        """Wrap the implementation's object pointer."""
        self.ptr = ptr
        self.dropped = False

    def __repr__(self) -> str:
        """Show the address and whether the reference was dropped."""
        state = " dropped" if self.dropped else ""
        return (
            f"<object {int(abi_ffi().cast('uintptr_t', self.ptr)):#x}{state}>"
        )
