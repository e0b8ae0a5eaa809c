"""Write every committed result and generated file: what ``tox -e regen`` runs.

Usage::

    python tools/regen.py

A test run (``make test``, or any single tox environment) writes only
under ``build/``: the conformance reports to ``build/results/<name>.json``
and the benchmark figures to ``build/bench/latest.json``.  This script is
the one writer of what the repository commits from them.  It does not run
anything again: it copies and normalises what the last runs left in
``build/``, in this order:

1. every ``build/results/<name>.json`` becomes ``results/<name>.json``;
   each committed report (copied or not) is then normalised: node IDs
   relative to the repository (``conformance/tests/<file>::<test>``) and
   no ``duration`` and no object address in a message, which change
   on every run;
2. ``build/bench/latest.json`` becomes ``benchmarks/results/latest.json``,
   ``build/mutation/score.json`` ``tools/mutation/score.json``, and each
   ``build/cpython-3.13/<name>.json`` (CPython's own tests, the real
   consumers and the sizes of the patched builds) becomes
   ``implementations/cpython-3.13/results/<name>.json``;
3. the PEP's generated blocks are rebuilt from the committed results
   (``tools/gen_pep_tables.py``);
4. the requirement registry ``conformance/requirements.json`` is rebuilt
   from the PEP (``tools/gen_requirements.py``).

A report or results file that ``build/`` does not hold keeps its
committed copy, so regenerating after ``tox -e py312`` alone changes only
that column.  Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import gen_pep_tables
import gen_requirements

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
RUN_RESULTS = BUILD / "results"
RUN_BENCH = BUILD / "bench" / "latest.json"
RUN_MUTATION = BUILD / "mutation" / "score.json"
#: What the patched CPython's scripts measured (CPython's own tests, the
#: real consumers, PyTorch Dynamo, sizes and instruction counts).
RUN_PATCHED = BUILD / "cpython-3.13"
PATCHED_RESULTS = REPO / "implementations" / "cpython-3.13" / "results"
MUTATION = REPO / "tools" / "mutation" / "score.json"
RESULTS = REPO / "results"
BENCH = REPO / "benchmarks" / "results" / "latest.json"

#: The same rule as ``stable_nodeid`` in conformance/report.py (this
#: script runs without the suite installed); meta_tests/test_clean_tree.py
#: checks that the two agree.
_SUITE_TESTS = re.compile(r"(?:^|.*/)(?:coextra_)?conformance/tests/")


def stable_nodeid(nodeid: str) -> str:
    """Spell a suite test's node ID as its path in the repository."""
    path, separator, rest = nodeid.partition("::")
    return _SUITE_TESTS.sub("conformance/tests/", path, count=1) + (
        separator + rest
    )


#: An object's repr in a message, as in ``<function f at 0x7f3a...>``:
#: its address changes on every run.
_OBJECT_ADDRESS = re.compile(r" at 0x[0-9a-f]+>")


def normalise_report(report: dict[str, Any]) -> dict[str, Any]:
    """Return the committed form of a report.

    Stable node IDs, no durations and no object addresses in messages, so
    that a report changes only when a result does.
    """
    tests = [
        test
        for requirement in report.get("requirements", [])
        for test in requirement.get("tests", [])
    ] + list((report.get("contracts") or {}).get("tests", []))
    for test in tests:
        test["nodeid"] = stable_nodeid(test["nodeid"])
        test.pop("duration", None)
        if isinstance(test.get("message"), str):
            test["message"] = _OBJECT_ADDRESS.sub(
                " at 0x...>", test["message"]
            )
    return report


def _dump(data: Any) -> str:
    """Format JSON the way the suite writes its reports.

    Paths of the machine that ran the suite (tracebacks in evidence) are
    made relative to the checkout, or to ``~``, so committed reports say
    nothing about where they were made.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    text = text.replace(str(REPO) + "/", "")
    return text.replace(str(Path.home()) + "/", "~/")


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it holds it already; say so."""
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    if old == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"updated {path.relative_to(REPO)}")


def _read_json(path: Path) -> Any:
    """Read a JSON file; exit with one line naming it if it is broken."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        sys.exit(
            f"error: {path.relative_to(REPO)} is not readable JSON ({exc}); "
            "run its tox environment again"
        )


def commit_reports() -> None:
    """Copy the run's reports into results/ and normalise every report."""
    if RUN_RESULTS.is_dir():
        for path in sorted(RUN_RESULTS.glob("*.json")):
            report = normalise_report(_read_json(path))
            _write_if_changed(RESULTS / path.name, _dump(report))
    for path in sorted(RESULTS.glob("*.json")):
        report = normalise_report(_read_json(path))
        _write_if_changed(path, _dump(report))


def commit_benchmarks() -> None:
    """Copy the benchmark figures of the last ``tox -e bench``."""
    if RUN_BENCH.is_file():
        _read_json(RUN_BENCH)  # refuse a truncated file
        _write_if_changed(BENCH, RUN_BENCH.read_text(encoding="utf-8"))


def commit_mutation_score() -> None:
    """Copy the score of the last ``tox -e mutation``."""
    if RUN_MUTATION.is_file():
        _read_json(RUN_MUTATION)  # refuse a truncated file
        _write_if_changed(MUTATION, RUN_MUTATION.read_text(encoding="utf-8"))


def commit_patched_results() -> None:
    """Copy what the patched CPython's measuring scripts last wrote."""
    if RUN_PATCHED.is_dir():
        for path in sorted(RUN_PATCHED.glob("*.json")):
            _read_json(path)  # refuse a truncated file
            _write_if_changed(
                PATCHED_RESULTS / path.name, path.read_text(encoding="utf-8")
            )


def main() -> int:
    """Regenerate every committed result and generated file."""
    commit_reports()
    commit_benchmarks()
    commit_mutation_score()
    commit_patched_results()
    status = gen_pep_tables.main([])
    if status:
        return status
    return gen_requirements.main([])


if __name__ == "__main__":
    sys.exit(main())
