"""Smoke test of the benchmarks: the harness builds, runs and validates.

``benchmarks/run.py --quick`` runs every part of the benchmark suite at
small sizes (seconds); its output must validate against the committed
schema ``benchmarks/results.schema.json``, as must the committed
``benchmarks/results/latest.json``.  Timing targets are not checked
here: a loaded test machine says nothing about them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SCHEMA = BENCH / "results.schema.json"
LATEST = BENCH / "results" / "latest.json"


def load(path: Path) -> Any:
    """Parse one JSON file."""
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run ``run.py --quick`` once; return its results."""
    for tool in ("gcc", "valgrind"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--quick",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"run.py --quick failed:\n{proc.stderr}"
    return load(out)


def test_quick_run_validates_against_schema(quick_results: Any) -> None:
    """The output of a quick run is valid under the committed schema."""
    jsonschema.validate(quick_results, load(SCHEMA))


def test_quick_run_figures_are_consistent(quick_results: Any) -> None:
    """Minima, medians and ratios agree with each other."""
    cases = {c["name"]: c for c in quick_results["cases"]}
    assert cases["raw_load"]["ratio_to_raw_load"] == 1.0
    for name, case in cases.items():
        if name == "hook_create_overhead":
            continue
        assert 0 < case["ns_min"] <= case["ns_median"], name
    # The Python-level lookups cannot be cheaper than the C loads.
    assert cases["py_dict_get"]["ns_min"] > cases["raw_load"]["ns_min"]


def test_quick_run_counts_instructions(quick_results: Any) -> None:
    """Callgrind ran: the floor takes a handful of instructions."""
    counts = {r["name"]: r["count"] for r in quick_results["instructions"]}
    assert 2 <= counts["raw_load"] <= 20, counts


def test_reference_pays_nothing_without_consumers(
    quick_results: Any,
) -> None:
    """The reference's code objects carry 0 extra bytes (R-FLAG-1)."""
    rows = [
        r
        for r in quick_results["memory"]
        if r.get("implementation") == "reference" and r["consumers"] == 0
    ]
    assert [r["bytes_per_code"] for r in rows] == [0]


def test_schema_rejects_a_result_without_a_required_case(
    quick_results: Any,
) -> None:
    """The schema is not vacuous: dropping a named case fails it."""
    broken = dict(quick_results)
    broken["cases"] = [
        c for c in quick_results["cases"] if c["name"] != "cpython_get"
    ]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, load(SCHEMA))


def test_committed_results_validate() -> None:
    """benchmarks/results/latest.json, when committed, is valid."""
    if not LATEST.exists():
        pytest.skip("no committed results yet")
    jsonschema.validate(load(LATEST), load(SCHEMA))


def test_like_for_like_runs_or_says_why(quick_results: Any) -> None:
    """Each CPython 3.13.15 build is measured or skipped with a reason."""
    details = quick_results["like_for_like_details"]
    measured = set(details.get("builds", {}))
    skipped = details["skipped"]
    assert measured | set(skipped) == {
        "baseline",
        "baseline-ft",
        "patched",
        "patched-ft",
    }
    for variant, reason in skipped.items():
        assert reason, variant
        assert "\n" not in reason, variant
    rows = quick_results["like_for_like"]
    if not measured:
        assert rows == []
        return
    for variant, build in details["builds"].items():
        designs = {
            r["design"]
            for r in rows
            if r["variant"] == variant and r["op"] == "get"
        }
        expected = (
            {"pep", "pep-late"}
            if build["patched"]
            else {"stock", "watchers-table"}
        )
        assert designs == expected, variant
    counted = [r for r in rows if r["op"] == "get"]
    assert all(r["instructions"] > 0 for r in counted), counted


def test_like_for_like_memory_counts_the_pointer(quick_results: Any) -> None:
    """Stock pays at least its co_extra pointer unused; the table 0."""
    rows = {
        (r["build"], r["design"], r["consumers"]): r["bytes_per_code"]
        for r in quick_results["memory"]
        if "build" in r
    }
    if not rows:
        pytest.skip("no CPython 3.13.15 build in the cache")
    for (build, design, consumers), value in rows.items():
        if design == "stock" and consumers == 0:
            assert value >= 8, build
        if design == "watchers-table" and consumers == 0:
            assert value == 0, build
