"""Verdicts, the JSON report (against its schema) and the summary."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import jsonschema
import pytest

import coextra_conformance
from coextra_conformance.expectations import Expectation
from coextra_conformance.report import (
    CaseResult,
    compute_verdicts,
    requirement_outcome,
)
from coextra_conformance.requirements import (
    Registry,
    Requirement,
    load_registry,
)

RunToy = Callable[..., tuple[pytest.RunResult, dict[str, Any]]]


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    """Map requirement ID to outcome, for requirements that had tests."""
    return {
        r["id"]: r["outcome"] for r in report["requirements"] if r["tests"]
    }


def results(*outcomes: str) -> list[CaseResult]:
    """Make one test result per outcome, all for R-X-1."""
    return [CaseResult(f"t{i}", ("R-X-1",), o) for i, o in enumerate(outcomes)]


FAIL = Expectation("R-X-1", "known bug")
CRASH = Expectation("R-X-1", "known crash", outcome="crashed")


@pytest.mark.parametrize(
    ("tests", "expectation", "expected"),
    [
        ((), None, "untested"),
        (("skipped",), None, "untested"),
        (("passed",), None, "pass"),
        (("passed", "not-applicable"), None, "pass"),
        (("not-applicable", "not-applicable"), None, "not-applicable"),
        (("passed", "failed"), None, "fail"),
        (("failed", "error"), None, "error"),
        (("error", "crashed", "failed"), None, "crashed"),
        (("passed", "failed"), FAIL, "xfail"),
        (("passed", "passed"), FAIL, "xpass"),
        (("crashed",), FAIL, "crashed"),
        (("crashed", "passed"), CRASH, "xfail"),
        (("failed",), CRASH, "fail"),
        (("error",), FAIL, "error"),
        (("not-applicable",), FAIL, "not-applicable"),
        ((), FAIL, "untested"),
    ],
)
def test_requirement_outcome(
    tests: tuple[str, ...], expectation: Expectation | None, expected: str
) -> None:
    """Tests fold worst first; the expectation applies to the fold."""
    assert requirement_outcome(results(*tests), expectation) == expected


def tiny_registry() -> Registry:
    """Return a registry of one MUST, one SHOULD and one MAY."""
    return Registry(
        9999,
        "1.0",
        tuple(
            Requirement(f"R-X-{n}", level, "X", f"title {n}", "text", "a")
            for n, level in enumerate(("MUST", "SHOULD", "MAY"), 1)
        ),
    )


@pytest.mark.parametrize(
    ("must", "should", "verdict"),
    [
        ("passed", "failed", "conformant"),
        ("not-applicable", "crashed", "conformant"),
        ("failed", "passed", "non-conformant"),
        ("crashed", "passed", "non-conformant"),
        ("error", "passed", "non-conformant"),
        (None, "passed", "non-conformant"),
    ],
)
def test_verdict_looks_at_must_only(
    must: str | None, should: str, verdict: str
) -> None:
    """Only MUST outcomes decide; an untested MUST is non-conformant."""
    tests = [CaseResult("s", ("R-X-2",), should)]
    if must is not None:
        tests.append(CaseResult("m", ("R-X-1",), must))
    summary = compute_verdicts(tiny_registry(), tests, {}).summary()
    assert summary["verdict"] == verdict


def test_expected_must_failure_is_not_conformant() -> None:
    """An expectation keeps the run green but is no conformance."""
    tests = [CaseResult("m", ("R-X-1",), "failed")]
    verdicts = compute_verdicts(tiny_registry(), tests, {"R-X-1": FAIL})
    assert verdicts.outcomes["R-X-1"] == "xfail"
    assert not verdicts.failing
    summary = verdicts.summary()
    assert summary["MUST"] == {
        "pass": 0,
        "fail": 0,
        "xfail": 1,
        "xpass": 0,
        "not-applicable": 0,
        "crashed": 0,
        "error": 0,
        "untested": 0,
    }
    assert summary["verdict"] == "non-conformant"


def test_test_of_several_requirements_counts_for_each() -> None:
    """A test naming two IDs (twice, even) is listed once under each."""
    tests = [CaseResult("t", ("R-X-1", "R-X-2", "R-X-1"), "failed")]
    verdicts = compute_verdicts(tiny_registry(), tests, {})
    assert verdicts.outcomes == {
        "R-X-1": "fail",
        "R-X-2": "fail",
        "R-X-3": "untested",
    }
    assert [t.nodeid for t in verdicts.tests["R-X-1"]] == ["t"]


MIXED_TESTS = """
import os
import signal

import pytest

@pytest.mark.req("R-STORE-1")
def test_passes(session):
    pass

@pytest.mark.req("R-STORE-2")
def test_fails(session):
    assert 1 == 2

@pytest.mark.req("R-STORE-3")
@pytest.mark.isolated
def test_crashes(session):
    os.kill(os.getpid(), signal.SIGSEGV)

@pytest.mark.req("R-STORE-4")
@pytest.mark.requires("threads")
def test_not_applicable(session):
    pass

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

@pytest.mark.req("R-STORE-5")
def test_errors(broken):
    pass

@pytest.mark.req("R-FREE-1")
def test_expected_to_fail(session):
    assert 0

@pytest.mark.req("R-INDEX-6")
def test_should(session):
    pass

def test_unrelated():
    pass
"""

MIXED_OUTCOMES = {
    "R-STORE-1": "pass",
    "R-STORE-2": "fail",
    "R-STORE-3": "crashed",
    "R-STORE-4": "not-applicable",
    "R-STORE-5": "error",
    "R-FREE-1": "xfail",
    "R-INDEX-6": "pass",
}

EXPECTATIONS = """
[R-FREE-1]
reason = "known bug"
link = "https://example.org/bug/1"
"""


@pytest.fixture
def schema() -> dict[str, Any]:
    """Return the committed report schema."""
    text = (
        resources.files("coextra_conformance")
        .joinpath("report.schema.json")
        .read_text(encoding="utf-8")
    )
    decoded: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(decoded)
    return decoded


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_report_validates_and_holds_outcomes(
    run_toy: RunToy,
    pytester: pytest.Pytester,
    schema: dict[str, Any],
    xdist: bool,
) -> None:
    """Every outcome kind lands in a report valid against the schema."""
    pytester.makepyfile(MIXED_TESTS)
    pytester.makefile(".toml", xfail=EXPECTATIONS)
    args = ["--coextra-expectations=xfail.toml"]
    if xdist:
        args += ["-n", "2"]
    result, report = run_toy(*args, subprocess=xdist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    jsonschema.Draft202012Validator(schema).validate(report)
    assert outcomes(report) == MIXED_OUTCOMES
    registry = load_registry()
    assert report["spec_version"] == registry.spec_version
    assert report["suite_version"] == coextra_conformance.__version__
    assert report["implementation"] == {
        "name": "toy",
        "version": "0.1",
        "capabilities": ["hooks"],
    }
    assert [r["id"] for r in report["requirements"]] == list(registry.ids)
    by_id = {r["id"]: r for r in report["requirements"]}
    assert by_id["R-FREE-1"]["expectation"] == {
        "reason": "known bug",
        "link": "https://example.org/bug/1",
        "outcome": "fail",
    }
    assert "expectation" not in by_id["R-STORE-2"]
    (test,) = by_id["R-STORE-5"]["tests"]
    assert test["nodeid"].endswith("::test_errors")
    assert test["outcome"] == "error"
    assert "fixture broke" in test["message"]
    summary = report["summary"]
    assert summary["verdict"] == "non-conformant"
    assert summary["SHOULD"]["pass"] == 1
    must = summary["MUST"]
    assert sum(must.values()) == sum(
        r.level == "MUST" for r in registry.requirements
    )
    assert must["untested"] == sum(must.values()) - 6


def test_schema_rejects_unknown_outcome(schema: dict[str, Any]) -> None:
    """The schema is strict enough to catch a misspelt outcome."""
    report = {
        "spec_version": "1.0",
        "suite_version": "1.0.0",
        "implementation": {"name": "x", "version": "1", "capabilities": []},
        "requirements": [
            {
                "id": "R-STORE-1",
                "level": "MUST",
                "title": "t",
                "area": "STORE",
                "outcome": "passed",
                "tests": [],
            }
        ],
        "summary": {"MUST": {}, "SHOULD": {}, "MAY": {}, "verdict": "ok"},
    }
    validator = jsonschema.Draft202012Validator(schema)
    errors = {e.json_path for e in validator.iter_errors(report)}
    assert "$.requirements[0].outcome" in errors
    assert "$.summary.verdict" in errors
    assert "$.summary.MUST" in errors


def test_passing_run_succeeds_and_summarises(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """All tests pass: exit 0; summary lists passes only with -v."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.req("R-STORE-1")
        def test_one(session):
            pass
        """
    )
    result, report = run_toy("--coextra-docs-url=https://x.org/pep.html")
    assert result.ret == pytest.ExitCode.OK
    assert outcomes(report) == {"R-STORE-1": "pass"}
    assert "R-STORE-1 " not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*PEP 9999 conformance: toy 0.1*",
            "(* passing, not-applicable or untested requirements not*",
            "MUST: 1 pass, * untested",
            "verdict: non-conformant (MUST: * untested)",
        ]
    )
    result, _ = run_toy("-v", "--coextra-docs-url=https://x.org/pep.html")
    result.stdout.fnmatch_lines(
        ["R-STORE-1 * MUST * pass * Unset slot reads NULL*"]
    )
    assert "<https://x.org/pep.html#r-store-1>" in result.stdout.str()


def test_summary_lists_failures_first(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """Crashes before failures before expected failures, with links."""
    pytester.makepyfile(MIXED_TESTS)
    pytester.makefile(".toml", xfail=EXPECTATIONS)
    result, _ = run_toy("--coextra-expectations=xfail.toml")
    lines = result.stdout.lines
    start = next(
        i for i, line in enumerate(lines) if "PEP 9999 conformance" in line
    )
    listed = [line.split()[0] for line in lines[start + 1 : start + 5]]
    assert listed == ["R-STORE-3", "R-STORE-5", "R-STORE-2", "R-FREE-1"]
    assert "<docs/_build/html/pep/pep-9999.html#r-store-3>" in lines[start + 1]


def test_no_summary_when_no_conformance_test_ran(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """An exported COEXTRA_IMPL adds nothing to an unrelated run."""
    pytester.makepyfile("def test_plain():\n    pass\n")
    result, report = run_toy()
    assert result.ret == pytest.ExitCode.OK
    assert "PEP 9999 conformance" not in result.stdout.str()
    assert set(outcomes(report).values()) == set()
    assert report["summary"]["verdict"] == "non-conformant"


def test_collect_only_writes_no_report(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """Collecting is not running: no verdicts, no report."""
    pytester.makepyfile(MIXED_TESTS)
    result, report = run_toy("--collect-only")
    assert result.ret == pytest.ExitCode.OK
    assert report == {}
    assert "verdict:" not in result.stdout.str()


def test_timeout_counts_as_crashed() -> None:
    """A hung test is a crash of its requirement (the enum is unchanged)."""
    assert requirement_outcome(results("passed", "timeout"), None) == (
        "crashed"
    )
    assert requirement_outcome(results("timeout"), CRASH) == "xfail"


def test_failure_counts_only_for_the_blamed_requirement() -> None:
    """A test of two IDs whose check of one failed leaves the other be."""
    blamed = CaseResult("t", ("R-X-1", "R-X-2"), "failed", blame="R-X-2")
    passing = CaseResult("u", ("R-X-1",), "passed")
    verdicts = compute_verdicts(tiny_registry(), [blamed, passing], {})
    assert verdicts.outcomes == {
        "R-X-1": "pass",
        "R-X-2": "fail",
        "R-X-3": "untested",
    }


def test_contracts_are_in_the_report_and_summary() -> None:
    """Contract tests get their own section, and the summary counts them."""
    from coextra_conformance.report import build_report, summary_lines

    contracts = [
        CaseResult("c1", (), "passed"),
        CaseResult("c2", (), "failed", message="differs from the model"),
    ]
    verdicts = compute_verdicts(tiny_registry(), [], {}, contracts)

    class Impl:
        name = "toy"
        version = "0"

    report = build_report(verdicts, Impl(), frozenset())  # type: ignore[arg-type]
    assert report["contracts"] == {
        "counts": {"passed": 1, "failed": 1},
        "tests": [
            {"nodeid": "c1", "outcome": "passed", "duration": 0.0},
            {
                "nodeid": "c2",
                "outcome": "failed",
                "duration": 0.0,
                "message": "differs from the model",
            },
        ],
    }
    lines = summary_lines(verdicts, "pep.html", verbose=False)
    assert "contract failed          c2" in lines
    assert "contracts: 1 failed, 1 passed" in lines


ATTRIBUTION_TESTS = """
import pytest

from coextra_conformance.evidence import Deviation, PreconditionFailed


@pytest.mark.req("R-STORE-1", "R-STORE-2")
def test_second_check_fails(session):
    raise Deviation(
        "Get read 0x2", requirement="R-STORE-2", function="Get",
        expected={"value": 1}, actual={"value": 2},
    )


@pytest.mark.req("R-STORE-1")
def test_store_one(session):
    pass


@pytest.mark.req("R-STORE-3")
def test_needs_another_requirement(session):
    raise Deviation("free called twice", requirement="R-FREE-3")


@pytest.mark.req("R-STORE-4")
def test_set_up_fails(session):
    raise PreconditionFailed("no code object")
"""


def test_failures_are_attributed_and_carry_evidence(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """Evidence reaches the report, and failures are attributed.

    A failed check of another requirement is an error of the test's own;
    a test of two IDs fails only the one whose check failed.
    """
    pytester.makepyfile(ATTRIBUTION_TESTS)
    _, report = run_toy()
    assert outcomes(report) == {
        "R-STORE-1": "pass",
        "R-STORE-2": "fail",
        "R-STORE-3": "error",
        "R-STORE-4": "error",
    }
    tests = {r["id"]: r["tests"] for r in report["requirements"]}
    (failing,) = tests["R-STORE-2"]
    assert failing["evidence"] == {
        "kind": "assertion",
        "requirement": "R-STORE-2",
        "function": "Get",
        "expected": {"value": 1},
        "actual": {"value": 2},
    }
    assert [t["nodeid"] for t in tests["R-STORE-1"]] == [
        "test_failures_are_attributed_and_carry_evidence.py::test_store_one"
    ]
    assert tests["R-STORE-3"][0]["evidence"]["kind"] == "precondition"
    assert tests["R-STORE-4"][0]["evidence"]["kind"] == "precondition"
    schema = json.loads(
        resources.files(coextra_conformance)
        .joinpath("report.schema.json")
        .read_text(encoding="utf-8")
    )
    jsonschema.validate(report, schema)
