"""The capability table of the adapter page, read from the suite's sources.

``.. coextra-capabilities::`` lists every capability the suite knows, in
the order of the ``Capability`` enum of ``conformance/adapter.py``, with
what it means (the ``#:`` comment above the member) and its side in the C
ABI of ``conformance/abi/coextra_abi.h``: the ``COEXTRA_CAP_*`` bit that
declares it, and the ABI minor version that added the table entry it
needs (the ``ABI minor N: the <entry> entry is set`` comment above the
bit).  Both files are read as text, not imported, so the docs build needs
no cffi, and the page has no copy of its own to drift.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

#: ``#define COEXTRA_CAP_RELEASE (1u << 0)``
_CAP_DEFINE = re.compile(
    r"^\s*#\s*define\s+COEXTRA_CAP_(?P<name>\w+)\s+\(1u\s*<<\s*(?P<bit>\d+)\)"
)
#: ``/* ABI minor 1: the compare_exchange_extra entry is set. */``
_MINOR_NOTE = re.compile(r"ABI minor (?P<minor>\d+): the (?P<entry>\w+) entry")
#: Cross-reference roles of the comments, shown as literals on the page.
_ROLE = re.compile(r":[\w:]+:`~?\.?(?P<target>[^`]+)`")


@dataclass(frozen=True)
class CapabilityRow:
    """One capability as the suite and the C ABI define it."""

    #: The enum member's name (``COMPARE_EXCHANGE``).
    name: str
    #: The value the suite and ``--coextra-impl`` reports use.
    value: str
    #: The ``#:`` comment above the member, reST.
    meaning: str
    #: The ``COEXTRA_CAP_*`` bit number, or None when the ABI has none.
    bit: int | None
    #: The ABI minor version that added the needed entry (0 for 1.0).
    minor: int | None
    #: That entry's name, when a minor version added one.
    entry: str | None


def _enum_members(source: str) -> list[tuple[str, str, str]]:
    """Return (name, value, comment) of each ``Capability`` member."""
    lines = source.splitlines()
    tree = ast.parse(source)
    classes = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "Capability"
    ]
    if not classes:
        raise ExtensionError("conformance/adapter.py has no Capability enum")
    members = []
    for node in classes[0].body:
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            continue
        comment: list[str] = []
        index = node.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        members.append(
            (node.targets[0].id, node.value.value, " ".join(comment))
        )
    return members


def _abi_bits(header: str) -> dict[str, tuple[int, int, str | None]]:
    """Map each ``COEXTRA_CAP_*`` name to (bit, minor, entry)."""
    bits: dict[str, tuple[int, int, str | None]] = {}
    previous = ""
    for line in header.splitlines():
        match = _CAP_DEFINE.match(line)
        if match is not None:
            note = _MINOR_NOTE.search(previous)
            minor = int(note["minor"]) if note else 0
            entry = note["entry"] if note else None
            bits[match["name"]] = (int(match["bit"]), minor, entry)
        if line.strip():
            previous = line
    return bits


def capability_rows(adapter_source: str, header: str) -> list[CapabilityRow]:
    """Return the table's rows: every capability, in the enum's order."""
    bits = _abi_bits(header)
    rows = []
    for name, value, meaning in _enum_members(adapter_source):
        bit, minor, entry = bits.get(name, (None, None, None))
        rows.append(CapabilityRow(name, value, meaning, bit, minor, entry))
    return rows


def _abi_cell(row: CapabilityRow, major: int) -> str:
    if row.bit is None:
        return "no bit"
    text = f"``COEXTRA_CAP_{row.name}``, bit {row.bit}"
    if row.entry is not None:
        text += f"; entry ``{row.entry}``, ABI {major}.{row.minor}"
    return text


def table_source(rows: list[CapabilityRow], major: int) -> list[str]:
    """Return the reST of the table (a list-table)."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 18 30 52",
        "",
        "   * - Capability",
        "     - C ABI",
        "     - What the implementation provides",
    ]
    for row in rows:
        meaning = _ROLE.sub(r"``\g<target>``", row.meaning)
        lines += [
            f"   * - ``{row.value}``",
            f"     - {_abi_cell(row, major)}",
            f"     - {meaning}",
        ]
    return lines


class CapabilitiesDirective(SphinxDirective):
    """``.. coextra-capabilities::``: every capability, from its sources."""

    def run(self) -> list[nodes.Node]:
        """Read the enum and the header; return the table."""
        srcdir = Path(self.env.srcdir)
        adapter = srcdir / self.config.coextra_adapter_source
        header = srcdir / self.config.coextra_abi_header
        texts = []
        for path in (adapter, header):
            self.env.note_dependency(str(path))
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ExtensionError(
                    f"coextra-capabilities: cannot read {path}: {exc.strerror}"
                ) from exc
        rows = capability_rows(texts[0], texts[1])
        version = re.search(
            r"#\s*define\s+COEXTRA_ABI_VERSION\s+(\d+)", texts[1]
        )
        major = int(version[1]) if version else 1
        container = nodes.container(classes=["coextra-capabilities"])
        self.state.nested_parse(
            StringList(table_source(rows, major), str(header)),
            self.content_offset,
            container,
        )
        return [container]
