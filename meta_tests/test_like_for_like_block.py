"""The PEP's ``like-for-like`` block, generated from the benchmark results.

``tools/gen_pep_tables.py`` fills ``.. BEGIN GENERATED: like-for-like``
from the like-for-like lists of ``benchmarks/results/latest.json``; these
tests give it a small results file and read what it writes.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gen_pep_tables() -> Iterator[ModuleType]:
    """Import the generator (tools/ is not a package)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "tools"))
        yield importlib.import_module("gen_pep_tables")


def results() -> dict[str, Any]:
    """Return a results file with one build's like-for-like figures."""
    rows = [
        {
            "build": "3.13.15",
            "design": design,
            "op": op,
            "ns": ns,
            "instructions": count,
        }
        for design, op, ns, count in (
            ("stock", "get", 3.0, 15.0),
            ("pep", "get", 4.5, 45.0),
            ("pep-late", "get", 7.0, 73.0),
            ("watchers-table", "get", 1.2, 6.0),
            ("stock", "set", 4.0, None),
        )
    ]
    return {
        "machine": {"cpu": "Test CPU", "cores": 2, "date": "2026-12-03T05"},
        "like_for_like": rows,
        "memory": [
            {
                "implementation": "reference",
                "consumers": 0,
                "bytes_per_code": 0,
            },
            {
                "build": "3.13.15",
                "design": "pep",
                "consumers": 1,
                "bytes_per_code": 40,
            },
        ],
        "pyperformance": [
            {
                "build": "3.13.15",
                "consumer": True,
                "geomean": 1.004,
                "spread": [0.99, 1.02],
                "aa_geomean": 1.001,
                "benchmarks": 24,
            },
        ],
    }


def test_block_lists_every_design_through_its_exports(
    gen_pep_tables: ModuleType, tmp_path: Path
) -> None:
    """Each measured design and operation is a row, with its figures."""
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(results()))
    text = "\n".join(gen_pep_tables.like_for_like_block(path))
    assert "   * - PEP, late consumer (out-of-line)\n     - get\n" in text
    assert "     - 73 (7.00 ns)" in text
    assert "     - -- (4.00 ns)" in text, "a count not taken shows --"
    assert "3.13.15, one consumer: 1.004 [0.990, 1.020]" in text
    assert "(A/A 1.001)" in text
    assert "     - 40" in text


def test_block_says_how_to_measure_when_nothing_is(
    gen_pep_tables: ModuleType, tmp_path: Path
) -> None:
    """Without like-for-like figures the block names the command."""
    data = results()
    data["like_for_like"] = []
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(data))
    lines = gen_pep_tables.like_for_like_block(path)
    assert len(lines) == 1
    assert "tox -e bench-cpython" in lines[0]


def test_rationale_costs_quote_each_design_through_its_exports(
    gen_pep_tables: ModuleType, tmp_path: Path
) -> None:
    """The Rationale's sentence gives the counts, in the designs' order."""
    data = results()
    data["memory"] += [
        {
            "build": "3.13.15",
            "design": "stock",
            "consumers": consumers,
            "bytes_per_code": size,
        }
        for consumers, size in ((0, 16), (1, 32), (4, 56))
    ]
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(data))
    (text,) = gen_pep_tables.rationale_costs_block(path)
    assert (
        "Reading a slot: 15 (stock CPython), 45 (this PEP, inline slot), "
        "73 (this PEP, out-of-line slot of a late consumer), 6 (a "
        "consumer's own hash table and a code watcher)." in text
    )
    assert "Storing into an empty slot: not counted in this run." in text
    assert "16/32/56 (stock CPython), --/40/-- (this PEP, inline slot)" in text


def test_rationale_costs_say_how_to_measure_when_nothing_is(
    gen_pep_tables: ModuleType, tmp_path: Path
) -> None:
    """Without like-for-like figures the Rationale names the command."""
    data = results()
    data["like_for_like"] = []
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(data))
    (text,) = gen_pep_tables.rationale_costs_block(path)
    assert "tox -e bench-cpython" in text
