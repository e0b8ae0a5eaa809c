"""The adapter page's capability table agrees with the suite and its ABI.

``docs/_ext/coextra_docs/capabilities.py`` reads the ``Capability`` enum
and the C header as text, so that the docs build needs no cffi; these
tests hold what it reads against what the C-ABI loader
(``coextra_conformance.cabi``) actually does with a table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from coextra_conformance import cabi
from coextra_conformance.adapter import Capability
from coextra_conformance.cabi import implementation as cabi_implementation
from coextra_conformance.cabi import loader as cabi_loader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

# Imported after the path is set: the extension is not an installed package.
from coextra_docs import capabilities  # noqa: E402

ADAPTER = ROOT / "conformance" / "adapter.py"
HEADER = ROOT / "conformance" / "abi" / "coextra_abi.h"


@pytest.fixture(scope="module")
def rows() -> list[capabilities.CapabilityRow]:
    """Return the rows the docs table is built from."""
    return capabilities.capability_rows(
        ADAPTER.read_text(encoding="utf-8"),
        HEADER.read_text(encoding="utf-8"),
    )


def test_every_capability_in_enum_order(
    rows: list[capabilities.CapabilityRow],
) -> None:
    """The table lists each capability once, as the enum orders them."""
    assert [row.value for row in rows] == [cap.value for cap in Capability]
    assert all(row.meaning for row in rows), "a member lacks its #: comment"


def test_bits_are_the_loaders(
    rows: list[capabilities.CapabilityRow],
) -> None:
    """Each bit is the header's, as the loader reads it; no bit, no row."""
    constants = cabi.abi_constants()
    for row in rows:
        macro = constants.get(f"COEXTRA_CAP_{row.name}")
        expected = None if macro is None else macro.bit_length() - 1
        assert row.bit == expected, row.value
    unbitted = {Capability(row.value) for row in rows if row.bit is None}
    assert unbitted == set(cabi.NO_ABI_BIT)


def test_minor_versions_are_the_loaders(
    rows: list[capabilities.CapabilityRow],
) -> None:
    """Entries added by a minor version match the loader's list."""
    shown = {
        row.entry: (Capability(row.value), row.minor)
        for row in rows
        if row.entry is not None
    }
    loader = {
        entry: (cap, cabi_loader._LAST_ENTRY_OF_MINOR.index(entry))
        for entry, cap in cabi_implementation.MINOR_ENTRIES.items()
    }
    assert shown == loader
    assert len(
        cabi_loader._LAST_ENTRY_OF_MINOR
    ) - 1 == cabi.abi_constants().get("COEXTRA_ABI_MINOR")


def test_table_source_names_bit_and_minor(
    rows: list[capabilities.CapabilityRow],
) -> None:
    """The reST cell of an entry-bound capability gives bit and version."""
    text = "\n".join(capabilities.table_source(rows, 1))
    assert (
        "``COEXTRA_CAP_COMPARE_EXCHANGE``, bit 10; entry "
        "``compare_exchange_extra``, ABI 1.1" in text
    )
    assert (
        "``COEXTRA_CAP_LIVE_BLOCKS``, bit 12; entry ``live_blocks``, ABI 1.2"
        in text
    )
    assert ":class:" not in text, "roles would not resolve on the page"
    assert ":func:" not in text, "roles would not resolve on the page"
