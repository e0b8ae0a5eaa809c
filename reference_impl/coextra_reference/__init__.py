"""The PEP 9999 reference implementation, packaged for the suite.

``implementation()`` is registered as ``reference`` in the entry-point
group ``coextra.implementations``; it wraps the C ABI table of the
compiled module with the suite's loader.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coextra_conformance.cabi import TableImplementation

__version__ = "1.0.0"


@functools.cache
def implementation() -> TableImplementation:
    """Return the reference implementation (one per process)."""
    from coextra_conformance.cabi import from_table_address

    from ._coextra import ffi, lib

    table = lib.coextra_get_table()
    address = int(ffi.cast("uintptr_t", table))
    return from_table_address(address, keepalive=lib)


def live_blocks() -> int:
    """Return how many heap blocks the C library holds right now."""
    from ._coextra import lib

    return int(lib.coextra_live_blocks())
