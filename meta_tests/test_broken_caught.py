"""The suite catches every deliberately broken implementation, and only it.

Each implementation of :mod:`coextra_conformance.broken` is the model with
one mutation.  The suite runs against it in a subprocess, and every
requirement in its ``EXPECTED_FAILURES`` must come out ``fail`` (or
``crashed``) in the JSON report, while every other requirement keeps the
outcome it has against the unbroken model (attribution: a verdict depends
only on the behaviour its requirement names; a test whose set-up step
needs the broken behaviour may end in ``error``, never in ``fail``).
A mutation that crashes the process in a test not marked ``isolated``,
or hangs, still yields a complete report.  Extra options for the
subprocess (for example ``-p coextra_conformance.plugin`` when the suite
is not installed, or ``-n 2``) can be given in
``COEXTRA_META_PYTEST_ARGS``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coextra_conformance.broken import BROKEN, BrokenImplementation
from coextra_conformance.requirements import load_registry

CAUGHT = ("fail", "crashed")


def run_suite(
    impl: str, where: Path, *, plain: bool = False, extra: tuple[str, ...] = ()
) -> tuple[int, dict[str, object], str]:
    """Run the shipped suite against ``impl``; return code, report, output.

    ``plain`` runs the README's command as it is, without the options of
    ``COEXTRA_META_PYTEST_ARGS`` (so without xdist).
    """
    report = where / "report.json"
    options = (
        []
        if plain
        else shlex.split(os.environ.get("COEXTRA_META_PYTEST_ARGS", ""))
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "coextra_conformance",
        f"--coextra-impl={impl}",
        f"--coextra-report={report}",
        "-p",
        "no:cacheprovider",
        "-q",
        *options,
        *extra,
    ]
    # The run happens outside the source tree, as an implementer's would.
    done = subprocess.run(
        command,
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert report.is_file(), f"no report written:\n{output[-3000:]}"
    decoded: dict[str, object] = json.loads(report.read_text("utf-8"))
    return done.returncode, decoded, output


def outcomes(report: dict[str, object]) -> dict[str, str]:
    """Map requirement IDs to their outcome in a report."""
    requirements = report["requirements"]
    assert isinstance(requirements, list)
    return {str(r["id"]): str(r["outcome"]) for r in requirements}


def test_every_expected_failure_is_a_requirement() -> None:
    """EXPECTED_FAILURES name requirements of the registry, never none."""
    registry = load_registry()
    for name, impl in BROKEN.items():
        assert impl.EXPECTED_FAILURES, f"{name} expects no failure"
        unknown = impl.EXPECTED_FAILURES - set(registry.ids)
        assert not unknown, f"{name}: unknown IDs {sorted(unknown)}"


def test_broken_registry_matches_module_attributes() -> None:
    """Every broken implementation is reachable as broken:NAME."""
    from coextra_conformance import broken

    for name, impl in BROKEN.items():
        assert getattr(broken, name) is impl, f"broken:{name} missing"
        assert isinstance(impl, BrokenImplementation)


def requirement_tests(
    report: dict[str, object],
) -> dict[str, list[dict[str, Any]]]:
    """Map requirement IDs to their test entries in a report."""
    requirements = report["requirements"]
    assert isinstance(requirements, list)
    return {str(r["id"]): list(r["tests"]) for r in requirements}


@pytest.fixture(scope="module")
def model_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Return the outcome of every requirement against the model."""
    code, report, output = run_suite(
        "coextra_conformance.model:implementation",
        tmp_path_factory.mktemp("model"),
    )
    assert code == 0, f"the suite fails against the model:\n{output[-3000:]}"
    return outcomes(report)


def assert_untouched(
    name: str,
    report: dict[str, object],
    baseline: dict[str, str],
    touched: frozenset[str],
) -> None:
    """Every requirement outside ``touched`` keeps its model outcome.

    Only a set-up step may fail for it (``error``, evidence kind
    ``precondition``): the broken behaviour was needed to get there.
    """
    got = outcomes(report)
    tests = requirement_tests(report)
    moved = {}
    for requirement, outcome in got.items():
        if requirement in touched or outcome == baseline.get(requirement):
            continue
        if outcome == "error" and all(
            test.get("evidence", {}).get("kind") == "precondition"
            for test in tests[requirement]
            if test["outcome"] == "error"
        ):
            continue
        moved[requirement] = (baseline.get(requirement), outcome)
    assert not moved, (
        f"broken:{name} breaks only {sorted(touched)}, yet these verdicts "
        f"moved (model outcome, outcome): {moved}; evidence: "
        + json.dumps(
            {r: [t.get("evidence") for t in tests[r]] for r in moved}
        )[:3000]
    )


#: Requirements whose verdict against a broken implementation depends on
#: how threads interleave: a thread test may or may not meet the fault,
#: so neither "caught" nor "untouched" can be asserted for them.
TIMING_DEPENDENT: dict[str, frozenset[str]] = {
    "reuses_allocated_index": frozenset({"R-THREAD-7"}),
    "threads_lose_updates": frozenset({"R-INTERP-7", "R-THREAD-7"}),
    "readers_see_torn_values": frozenset({"R-THREAD-2"}),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_suite_catches_broken_implementation(
    name: str, tmp_path: Path, model_outcomes: dict[str, str]
) -> None:
    """The suite reports each expected requirement as failed, only those.

    Every other verdict is the one the model gets.
    """
    code, report, output = run_suite(
        f"coextra_conformance.broken:{name}", tmp_path
    )
    assert_untouched(
        name,
        report,
        model_outcomes,
        BROKEN[name].EXPECTED_FAILURES
        | TIMING_DEPENDENT.get(name, frozenset()),
    )
    got = outcomes(report)
    missed = {
        i: got.get(i, "absent")
        for i in sorted(BROKEN[name].EXPECTED_FAILURES)
        if got.get(i) not in CAUGHT
    }
    assert not missed, (
        f"broken:{name} was not caught for {missed}\n{output[-3000:]}"
    )
    assert code != 0, f"the run against broken:{name} did not fail"
    summary = report["summary"]
    assert isinstance(summary, dict)
    # Failing a SHOULD alone leaves the verdict conformant (R-FLAG-9).
    requirements = report["requirements"]
    assert isinstance(requirements, list)
    levels = {str(r["id"]): str(r["level"]) for r in requirements}
    if any(levels.get(i) == "MUST" for i in BROKEN[name].EXPECTED_FAILURES):
        assert summary["verdict"] != "conformant", (
            f"broken:{name} was judged conformant"
        )


@pytest.mark.parametrize(
    ("name", "outcome", "extra"),
    [
        ("segfaults_on_odd_pattern", "crashed", ()),
        ("hangs_on_odd_pattern", "timeout", ("--coextra-timeout=5",)),
    ],
)
def test_dying_implementation_still_gets_a_complete_report(
    name: str,
    outcome: str,
    extra: tuple[str, ...],
    tmp_path: Path,
    model_outcomes: dict[str, str],
) -> None:
    """A segfault or a hang still yields a complete report.

    The test that dies is not marked isolated, and the command is the
    README's plain one (no xdist): the run goes on, that test is crashed
    or timeout with how it ended, and every other verdict is in the
    report as against the model.
    """
    from coextra_conformance import broken

    impl = getattr(broken, name)
    code, report, output = run_suite(
        f"coextra_conformance.broken:{name}", tmp_path, plain=True, extra=extra
    )
    assert code != 0, output[-3000:]
    registry = load_registry()
    got = outcomes(report)
    assert sorted(got) == sorted(registry.ids), "requirements missing"
    assert {got[i] for i in impl.EXPECTED_FAILURES} == {"crashed"}
    assert_untouched(name, report, model_outcomes, impl.EXPECTED_FAILURES)
    (test,) = requirement_tests(report)["R-STORE-3"]
    assert test["outcome"] == outcome
    evidence = test["evidence"]
    if outcome == "crashed":
        assert evidence["signal_name"] == "SIGSEGV", evidence
    else:
        assert evidence == {"kind": "timeout", "seconds": 5.0}, evidence
    contracts = report["contracts"]
    assert isinstance(contracts, dict)
    assert contracts["tests"], "contract tests missing from the report"
