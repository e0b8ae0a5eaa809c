"""An implementation backed by a C ABI table: its name and capabilities."""

from __future__ import annotations

from typing import Any

from ..adapter import Capability
from .header import abi_constants, abi_ffi, text
from .session import TableSession

#: Table entries appended by each ABI minor version, and the capability
#: that needs them; a table too short to hold an entry lacks it.
MINOR_ENTRIES: dict[str, Capability] = {
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
    for entry, cap in MINOR_ENTRIES.items():
        if not _has_entry(table, entry):
            caps.discard(cap)
    return frozenset(caps)


def _has_entry(table: Any, entry: str) -> bool:
    """Tell whether a (possibly older, shorter) table sets ``entry``."""
    ffi = abi_ffi()
    end = ffi.offsetof("coextra_table", entry) + ffi.sizeof("void *")
    return int(table.size) >= end and getattr(table, entry) != ffi.NULL


class TableImplementation:
    """An :class:`~.adapter.Implementation` backed by a C ABI table."""

    in_process = True

    def __init__(self, table: Any, keepalive: object, origin: str) -> None:
        """Wrap ``table``; ``keepalive`` keeps its code loaded."""
        self._table = table
        self._keepalive = keepalive
        self.origin = origin
        self.name = text(table.name)
        self.version = text(table.version)
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
