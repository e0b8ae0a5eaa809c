"""Verdicts per requirement, the JSON report and the terminal summary.

Test reports arrive in :meth:`Recorder.add` (in the xdist controller they
come from every worker); each carries its requirement IDs in
``user_properties`` under :data:`REQUIREMENT_PROPERTY`.  A test's phases
fold into one test outcome; the tests of a requirement fold into its
outcome, and only then is the requirement's expectation applied, because
expectations are keyed by requirement, not by test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import __version__
from .adapter import Capability, Implementation
from .contract import OUTCOMES as OUTCOMES
from .contract import SUMMARY_ORDER as SUMMARY_ORDER
from .evidence import EVIDENCE_PROPERTY, PRECONDITION_PROPERTY, Json
from .expectations import Expectation
from .requirements import LEVELS, Registry, Requirement

#: user_properties key naming a requirement a test checks (JUnit too).
REQUIREMENT_PROPERTY = "requirement"
#: user_properties entry that marks a test whose process died.
CRASH_PROPERTY = ("coextra_outcome", "crashed")
#: user_properties entry that marks a test whose process hung and was
#: killed; its requirement counts it as ``crashed``.
TIMEOUT_PROPERTY = ("coextra_outcome", "timeout")
#: user_properties key naming the one requirement whose check failed in
#: a test that names several; the others do not count that test.
BLAME_PROPERTY = "coextra_blame"
#: user_properties entry that marks a contract test (no requirement).
CONTRACT_PROPERTY = ("coextra_contract", "1")
#: Skip reasons starting with this map to ``not-applicable``.
NOT_APPLICABLE = "not-applicable: "

#: Outcomes that fail the pytest run.
FAILING = frozenset({"crashed", "error", "fail", "xpass"})
#: MUST outcomes that make an implementation non-conformant.  ``xfail``
#: is among them: an expectation keeps the run green, it does not make a
#: known deviation conform.
NON_CONFORMANT = FAILING | {"untested", "xfail"}

# Test outcomes by how much they dominate when phases are folded.
_TEST_RANK = {
    "passed": 0,
    "skipped": 1,
    "not-applicable": 2,
    "failed": 3,
    "error": 4,
    "timeout": 5,
    "crashed": 6,
}
# Outcomes the terminal summary lists only with -v.
_QUIET = frozenset({"pass", "not-applicable", "untested"})
_QUIET_TESTS = frozenset({"passed", "not-applicable", "skipped"})
_RAW = (
    ("crashed", "crashed"),
    ("timeout", "crashed"),
    ("error", "error"),
    ("failed", "fail"),
)


@dataclass
class CaseResult:
    """What one test did, folded over its phases."""

    nodeid: str
    requirements: tuple[str, ...]
    outcome: str = "passed"
    duration: float = 0.0
    message: str | None = None
    #: What the implementation did, for a test that did not pass.
    evidence: dict[str, Json] | None = None
    #: The requirement a failure is charged to, when the test names
    #: several (None: all of them).
    blame: str | None = None

    def counts_for(self, requirement: str) -> bool:
        """Tell whether this result bears on ``requirement``'s verdict.

        A test that failed on another requirement's check never reached
        this one's.
        """
        return self.blame is None or requirement in self.blame.split()

    def as_json(self) -> dict[str, object]:
        """Return the report's form of this result."""
        data: dict[str, object] = {
            "nodeid": stable_nodeid(self.nodeid),
            "outcome": self.outcome,
            "duration": round(self.duration, 6),
        }
        if self.message:
            data["message"] = self.message
        if self.evidence and self.outcome not in _NO_EVIDENCE:
            data["evidence"] = self.evidence
        return data


#: The suite's test folder, as pytest names it from a checkout
#: (``conformance/tests``) or from wherever the package is installed
#: (``.tox/env/lib/python3.X/site-packages/coextra_conformance/tests``).
_SUITE_TESTS = re.compile(r"(?:^|.*/)(?:coextra_)?conformance/tests/")


def stable_nodeid(nodeid: str) -> str:
    """Name a suite test by its path in the repository.

    pytest spells a node ID relative to the directory it runs from, so the
    same test gets a different ID in every virtual environment.  The
    report uses ``conformance/tests/<file>::<name>`` instead, which is
    where the test lives in this repository whatever ran it; an ID
    outside the suite's folder is left as it is.
    """
    path, separator, rest = nodeid.partition("::")
    return _SUITE_TESTS.sub("conformance/tests/", path, count=1) + (
        separator + rest
    )


# Test outcomes whose evidence the report leaves out.
_NO_EVIDENCE = frozenset({"passed", "skipped", "not-applicable"})


@dataclass
class Recorder:
    """Collects test reports as they arrive."""

    results: dict[str, CaseResult] = field(default_factory=dict)
    #: Contract tests (the adapter contract, the differential test).
    contracts: dict[str, CaseResult] = field(default_factory=dict)

    def add(self, report: pytest.TestReport) -> None:
        """Fold one phase report into its test's result."""
        properties = [tuple(p) for p in report.user_properties]
        ids = tuple(
            str(value)
            for key, value in properties
            if key == REQUIREMENT_PROPERTY
        )
        table = self.results
        if not ids and CONTRACT_PROPERTY in properties:
            table = self.contracts
        result = table.get(report.nodeid)
        if result is None:
            if not ids and table is self.results:
                return
            result = table[report.nodeid] = CaseResult(report.nodeid, ids)
        result.duration += report.duration
        outcome = classify(report)
        if outcome is None:
            return
        if _TEST_RANK[outcome] > _TEST_RANK[result.outcome]:
            result.outcome = outcome
            result.message = _message(report)
            result.evidence = _evidence(report)
            result.blame = next(
                (
                    str(value)
                    for key, value in properties
                    if key == BLAME_PROPERTY
                ),
                None,
            )


def _evidence(report: pytest.TestReport) -> dict[str, Json] | None:
    for key, value in report.user_properties:
        if key == EVIDENCE_PROPERTY and isinstance(value, dict):
            return dict(value)
    return None


def classify(report: pytest.TestReport) -> str | None:
    """Return the test outcome a phase report stands for, if any."""
    properties = [tuple(p) for p in report.user_properties]
    crashed = CRASH_PROPERTY in properties
    timed_out = TIMEOUT_PROPERTY in properties
    if report.passed:
        return "passed" if report.when == "call" else None
    if report.skipped:
        if hasattr(report, "wasxfail"):
            # An expected failure did fail; expectations apply later.
            if timed_out:
                return "timeout"
            if crashed:
                return "crashed"
            if PRECONDITION_PROPERTY in properties:
                return "error"
            return "failed"
        if _skip_reason(report).startswith(NOT_APPLICABLE):
            return "not-applicable"
        return "skipped"
    if timed_out:
        return "timeout"
    if crashed or report.when not in ("setup", "call", "teardown"):
        # pytest-xdist reports a lost worker with when="???".
        return "crashed"
    if report.when == "setup" or PRECONDITION_PROPERTY in properties:
        return "error"
    if report.longreprtext.startswith("[XPASS(strict)]"):
        return "passed"
    return "failed"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    return report.longreprtext


def _message(report: pytest.TestReport) -> str | None:
    if report.passed:
        return None
    if report.skipped and not hasattr(report, "wasxfail"):
        return _skip_reason(report)
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(getattr(crash, "message", "") or report.longreprtext)
    text = text.strip()
    if text.startswith("[gw") and "\n" in text:
        # pytest-xdist heads a worker's plain-text failure with the
        # worker's name and Python; the message is what follows.
        text = text.split("\n", 1)[1].strip()
    text = text.removeprefix("Failed: ")
    return text[:2000] if text else None


def requirement_outcome(
    tests: Iterable[CaseResult], expectation: Expectation | None
) -> str:
    """Fold the test outcomes of one requirement, then apply expectation."""
    ran = [t.outcome for t in tests if t.outcome != "skipped"]
    if not ran:
        return "untested"
    if all(outcome == "not-applicable" for outcome in ran):
        return "not-applicable"
    raw = next((r for t, r in _RAW if t in ran), "pass")
    if expectation is None or raw == "error":
        return raw
    if raw == "pass":
        return "xpass"
    return "xfail" if raw == expectation.outcome else raw


@dataclass(frozen=True)
class Verdicts:
    """The outcome of every requirement of one run."""

    registry: Registry
    outcomes: Mapping[str, str]
    tests: Mapping[str, list[CaseResult]]
    expectations: Mapping[str, Expectation]
    #: Contract tests: they check the adapter contract or compare with
    #: the model, and name no requirement.
    contracts: Sequence[CaseResult] = ()

    def contract_counts(self) -> dict[str, int]:
        """Count the contract tests by test outcome."""
        counts: dict[str, int] = {}
        for result in self.contracts:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return counts

    @property
    def failing(self) -> bool:
        """Tell whether some requirement outcome must fail the run."""
        return any(o in FAILING for o in self.outcomes.values())

    def summary(self) -> dict[str, object]:
        """Count outcomes per level and give the verdict."""
        result: dict[str, object] = {}
        conformant = True
        for level in LEVELS:
            counts = dict.fromkeys(SUMMARY_ORDER, 0)
            for requirement in self.registry.requirements:
                if requirement.level == level:
                    counts[self.outcomes[requirement.id]] += 1
            result[level] = counts
            if level == "MUST":
                conformant = not any(counts[o] for o in NON_CONFORMANT)
        result["verdict"] = "conformant" if conformant else "non-conformant"
        return result


def compute_verdicts(
    registry: Registry,
    results: Iterable[CaseResult],
    expectations: Mapping[str, Expectation],
    contracts: Iterable[CaseResult] = (),
) -> Verdicts:
    """Give every requirement of the registry its outcome."""
    tests: dict[str, list[CaseResult]] = {i: [] for i in registry.ids}
    for result in results:
        for requirement_id in dict.fromkeys(result.requirements):
            if requirement_id in tests and result.counts_for(requirement_id):
                tests[requirement_id].append(result)
    outcomes = {
        i: requirement_outcome(tests[i], expectations.get(i))
        for i in registry.ids
    }
    ordered = sorted(contracts, key=lambda result: result.nodeid)
    return Verdicts(registry, outcomes, tests, expectations, ordered)


def build_report(
    verdicts: Verdicts,
    implementation: Implementation,
    capabilities: frozenset[Capability],
) -> dict[str, object]:
    """Return the JSON report (schema: report.schema.json)."""
    requirements = []
    for requirement in verdicts.registry.requirements:
        entry: dict[str, object] = {
            "id": requirement.id,
            "level": requirement.level,
            "title": requirement.title,
            "area": requirement.area,
            "outcome": verdicts.outcomes[requirement.id],
            "tests": [t.as_json() for t in verdicts.tests[requirement.id]],
        }
        expectation = verdicts.expectations.get(requirement.id)
        if expectation is not None:
            entry["expectation"] = {
                "reason": expectation.reason,
                "link": expectation.link,
                "outcome": expectation.outcome,
            }
        requirements.append(entry)
    return {
        "pep": verdicts.registry.pep,
        "spec_version": verdicts.registry.spec_version,
        "suite_version": __version__,
        "implementation": {
            "name": str(implementation.name),
            "version": str(implementation.version),
            "capabilities": sorted(c.value for c in capabilities),
        },
        "requirements": requirements,
        "contracts": {
            "counts": verdicts.contract_counts(),
            "tests": [t.as_json() for t in verdicts.contracts],
        },
        "summary": verdicts.summary(),
    }


def write_report(path: Path, report: Mapping[str, object]) -> None:
    """Write the report as UTF-8 JSON, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def summary_lines(
    verdicts: Verdicts, docs_url: str, *, verbose: bool
) -> list[str]:
    """Return the terminal summary: requirements worst first, then counts.

    Passing, not-applicable and untested requirements are listed only
    when ``verbose``; the counts always cover every requirement.
    """
    order = {outcome: rank for rank, outcome in enumerate(OUTCOMES)}
    requirements = sorted(
        verdicts.registry.requirements,
        key=lambda r: order[verdicts.outcomes[r.id]],
    )
    width = max(len(r.id) for r in requirements) if requirements else 0
    lines = []
    hidden = 0
    for requirement in requirements:
        outcome = verdicts.outcomes[requirement.id]
        if not verbose and outcome in _QUIET:
            hidden += 1
            continue
        lines.append(_line(requirement, outcome, width, docs_url))
    if hidden:
        lines.append(
            f"({hidden} passing, not-applicable or untested requirements "
            f"not listed; -v lists them)"
        )
    lines.extend(
        f"unused expectation: {i} came out {verdicts.outcomes[i]}"
        for i in verdicts.expectations
        if verdicts.outcomes[i] in ("not-applicable", "untested")
    )
    for result in verdicts.contracts:
        if result.outcome not in _QUIET_TESTS or verbose:
            lines.append(f"contract {result.outcome:<14}  {result.nodeid}")
    if verdicts.contracts:
        tally = sorted(verdicts.contract_counts().items())
        lines.append(f"contracts: {', '.join(f'{n} {o}' for o, n in tally)}")
    summary = verdicts.summary()
    for level in LEVELS:
        counts = summary[level]
        assert isinstance(counts, dict)
        shown = [f"{n} {o}" for o, n in counts.items() if n]
        lines.append(f"{level}: {', '.join(shown) or 'none'}")
    lines.append(f"verdict: {summary['verdict']}{_why(summary)}")
    return lines


def _why(summary: Mapping[str, object]) -> str:
    must = summary["MUST"]
    assert isinstance(must, dict)
    reasons = [
        f"{must[o]} {o}"
        for o in SUMMARY_ORDER
        if o in NON_CONFORMANT and must[o]
    ]
    return f" (MUST: {', '.join(reasons)})" if reasons else ""


def _line(
    requirement: Requirement, outcome: str, width: int, docs_url: str
) -> str:
    link = f"{docs_url}#{requirement.anchor}"
    return (
        f"{requirement.id:<{width}}  {requirement.level:<6}  "
        f"{outcome:<14}  {requirement.title}  <{link}>"
    )
