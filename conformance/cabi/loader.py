"""Open a library or a table address and check the table it exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .header import abi_constants, abi_ffi
from .implementation import MINOR_ENTRIES, TableImplementation


class LoadError(Exception):
    """A library cannot be used as a coextra implementation."""


#: The last entry of each minor version of ABI 1, in order.  A table
#: must reach at least the first; entries past its size are absent.
_LAST_ENTRY_OF_MINOR = (
    "take_unraisable",
    "compare_exchange_extra",
    "live_blocks",
)


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
    for name, cap in MINOR_ENTRIES.items():
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
