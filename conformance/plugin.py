"""The pytest plugin (entry point ``pytest11: coextra``).

The plugin is installed with the suite and therefore loaded by every pytest
run in the environment.  It stays inert unless an implementation is
selected (``--coextra-impl`` or ``COEXTRA_IMPL``); collecting conformance
tests without one is a usage error.  Loading, verdicts and isolation live
in their own modules; this one wires them into pytest's hooks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
from hypothesis import settings

from . import isolation, leaks, loading, options
from .adapter import Capability, Implementation, Session
from .evidence import (
    EVIDENCE_PROPERTY,
    PRECONDITION_PROPERTY,
    PreconditionFailed,
    RecordingSession,
    evidence_of,
)
from .expectations import Expectation, ExpectationError, load_expectations
from .report import (
    BLAME_PROPERTY,
    CONTRACT_PROPERTY,
    CRASH_PROPERTY,
    NOT_APPLICABLE,
    REQUIREMENT_PROPERTY,
    TIMEOUT_PROPERTY,
    Recorder,
    Verdicts,
    build_report,
    compute_verdicts,
    summary_lines,
    write_report,
)
from .requirements import Registry, load_registry

#: A requirement ID inside a message or an evidence field.
REQUIREMENT_ID = re.compile(r"R-[A-Z]+-[1-9][0-9]*")

#: The conformance tests shipped with the suite.
SUITE_DIR = Path(__file__).parent / "tests"


@dataclass
class SuiteState:
    """Everything the plugin knows once an implementation is selected."""

    implementation: Implementation
    capabilities: frozenset[Capability]
    registry: Registry
    expectations: dict[str, Expectation]
    expectations_path: Path | None
    docs_url: str
    report_path: Path | None
    previous_profile: str
    #: Seconds a forked test may run before it is killed (None: no limit).
    timeout: float | None = None
    #: Fork every conformance test ("every") or the isolated ones only.
    isolation: str = "every"
    recorder: Recorder = field(default_factory=Recorder)
    verdicts: Verdicts | None = None


STATE = pytest.StashKey[SuiteState]()

_NO_VERDICT = (
    pytest.ExitCode.INTERRUPTED,
    pytest.ExitCode.INTERNAL_ERROR,
    pytest.ExitCode.USAGE_ERROR,
)


# -- configuration ---------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the --coextra-* options (see options.py)."""
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register markers; load the implementation if one is selected."""
    config.addinivalue_line(
        "markers",
        "req(*ids): the PEP 9999 requirement IDs a conformance test checks.",
    )
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): Capability members the test needs; "
        "without them the test is not-applicable.",
    )
    config.addinivalue_line(
        "markers",
        "contract: the test checks the adapter contract, not a requirement "
        "(the smoke layer); it needs no req marker.",
    )
    config.addinivalue_line(
        "markers",
        "isolated: run the test in a forked child when the implementation "
        "is in-process, so that a crash is reported as crashed.",
    )
    options.register_profiles()
    spec: str | None = config.getoption("coextra_impl")
    if spec is None:
        return
    state = config.stash[STATE] = _load_state(config, spec)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(
            _Results(state.recorder), "coextra-results"
        )


def _load_state(config: pytest.Config, spec: str) -> SuiteState:
    try:
        registry = load_registry()
    except (OSError, ValueError, KeyError) as exc:
        raise pytest.UsageError(
            f"cannot read the requirement registry ({exc}): regenerate "
            f"it with tools/gen_requirements.py"
        ) from None
    try:
        implementation = loading.resolve(spec)
        capabilities = loading.capabilities_of(implementation)
    except loading.LoadError as exc:
        raise pytest.UsageError(str(exc)) from None
    path: Path | None = config.getoption("coextra_expectations")
    try:
        expectations = load_expectations(path, registry.ids) if path else {}
    except ExpectationError as exc:
        raise pytest.UsageError(str(exc)) from None
    # Not every supported Hypothesis release has get_current_profile_name;
    # without it the active profile is "default", which is then restored.
    current = getattr(settings, "get_current_profile_name", lambda: "default")
    previous = str(current())
    settings.load_profile(config.getoption("coextra_hypothesis_profile"))
    return SuiteState(
        implementation=implementation,
        capabilities=capabilities,
        registry=registry,
        expectations=expectations,
        expectations_path=path,
        docs_url=config.getoption("coextra_docs_url"),
        report_path=config.getoption("coextra_report"),
        previous_profile=previous,
        timeout=config.getoption("coextra_timeout") or None,
        isolation=config.getoption("coextra_isolation"),
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the Hypothesis profile that was active before."""
    state = config.stash.get(STATE, None)
    if state is not None:
        settings.load_profile(state.previous_profile)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Show the implementation, its capabilities and COEXTRA_* variables."""
    state = config.stash.get(STATE, None)
    if state is None:
        return []
    impl = state.implementation
    where = "in-process" if impl.in_process else "out-of-process"
    caps = ", ".join(sorted(c.value for c in state.capabilities))
    expectations = (
        f"{state.expectations_path} ({len(state.expectations)} entries)"
        if state.expectations_path
        else "none"
    )
    lines = [
        f"coextra: implementation {impl.name} {impl.version} ({where})",
        f"coextra: capabilities: {caps or 'none'}",
        f"coextra: spec {state.registry.spec_version}, "
        f"{len(state.registry.requirements)} requirements, "
        f"expectations: {expectations}",
    ]
    lines.extend(
        f"coextra: {name}={value}"
        for name, value in sorted(os.environ.items())
        if name.startswith("COEXTRA_")
    )
    return lines


# -- collection --------------------------------------------------------------

NO_IMPLEMENTATION = (
    "no implementation selected: pass --coextra-impl=NAME or set "
    "COEXTRA_IMPL (available: {names})"
)


def _no_implementation() -> pytest.UsageError:
    names = ", ".join(loading.available_names()) or "none registered"
    return pytest.UsageError(NO_IMPLEMENTATION.format(names=names))


def _suite_dirs(config: pytest.Config) -> list[Path]:
    extra: list[Path] = config.getini("coextra_suite_paths")
    return [p.resolve() for p in [SUITE_DIR, *extra]]


def in_suite(config: pytest.Config, path: Path) -> bool:
    """Tell whether a test file belongs to the conformance suite."""
    path = path.resolve()
    return any(path.is_relative_to(d) for d in _suite_dirs(config))


def requirement_ids(item: pytest.Item) -> list[str]:
    """Return the requirement IDs of every req marker on ``item``."""
    ids = [arg for mark in item.iter_markers("req") for arg in mark.args]
    return list(dict.fromkeys(str(i) for i in ids))


def required_capabilities(item: pytest.Item) -> list[object]:
    """Return the arguments of every requires marker on ``item``."""
    return [a for m in item.iter_markers("requires") for a in m.args]


def marker_problems(
    item: pytest.Item, registry: Registry, suite: bool
) -> list[str]:
    """Return what is wrong with the req/requires markers of ``item``."""
    problems = []
    ids = [a for m in item.iter_markers("req") for a in m.args]
    if suite and not ids and item.get_closest_marker("contract") is None:
        problems.append(
            f"{item.nodeid}: no @pytest.mark.req(...) marker: every "
            f"conformance test names the requirement IDs it checks (or is "
            f"marked contract if it checks the adapter contract)"
        )
    problems.extend(
        f"{item.nodeid}: unknown requirement ID {i!r} in "
        f"@pytest.mark.req: use an ID of PEP 9999"
        for i in ids
        if i not in registry
    )
    for capability in required_capabilities(item):
        try:
            Capability(capability)
        except ValueError:
            problems.append(
                f"{item.nodeid}: unknown capability {capability!r} in "
                f"@pytest.mark.requires: use a Capability member"
            )
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Turn bad req/requires markers into collection errors."""
    report: pytest.CollectReport = yield
    state = collector.config.stash.get(STATE, None)
    if state is None or not report.passed:
        return report
    problems = []
    for node in report.result:
        if isinstance(node, pytest.Item):
            suite = in_suite(collector.config, node.path)
            problems += marker_problems(node, state.registry, suite)
    if not problems:
        return report
    return pytest.CollectReport(
        report.nodeid, "failed", "\n".join(problems), []
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Tag tests with their requirements; gate them by capability."""
    state = config.stash.get(STATE, None)
    if state is None:
        # An xdist worker leaves this check to the controller (below).
        if not hasattr(config, "workerinput") and any(
            in_suite(config, item.path) for item in items
        ):
            raise _no_implementation()
        return
    for item in items:
        ids = requirement_ids(item)
        if not ids:
            if item.get_closest_marker("contract") is not None:
                item.user_properties.append(CONTRACT_PROPERTY)
                _gate(item, state)
            continue
        item.user_properties.extend((REQUIREMENT_PROPERTY, i) for i in ids)
        _gate(item, state)
        expected = [state.expectations.get(i) for i in ids]
        # Only a test all of whose requirements are expected to fail is
        # marked: if it covers one more requirement, its failure is a
        # real one.  Strictness is judged per requirement at the end.
        if all(expected):
            reasons = "; ".join(
                f"{e.requirement}: {e.reason}" for e in expected if e
            )
            item.add_marker(pytest.mark.xfail(reason=reasons, strict=False))


def _gate(item: pytest.Item, state: SuiteState) -> None:
    needed = [Capability(c) for c in required_capabilities(item)]
    missing = [c.value for c in needed if c not in state.capabilities]
    if missing:
        item.add_marker(
            pytest.mark.skip(
                reason=f"{NOT_APPLICABLE}{state.implementation.name} does "
                f"not declare {', '.join(missing)}"
            )
        )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(
    node: object, ids: list[str]
) -> None:
    """Under xdist: refuse conformance tests when no implementation."""
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    if config.stash.get(STATE, None) is not None:
        return
    if any(in_suite(config, config.rootpath / i.split("::")[0]) for i in ids):
        raise _no_implementation()


# -- running ----------------------------------------------------------------


@pytest.fixture(scope="session")
def implementation(request: pytest.FixtureRequest) -> Implementation:
    """Return the implementation under test (--coextra-impl)."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        raise _no_implementation()
    return state.implementation


@pytest.fixture
def session(
    implementation: Implementation, request: pytest.FixtureRequest
) -> Iterator[Session]:
    """Give the test a fresh session; fail if it leaves an error set.

    With Capability.LIVE_BLOCKS the test also fails if it leaked heap
    blocks (leaks.py).
    """
    leaks.start(request.node, implementation)
    try:
        opened = implementation.open_session()
    except Exception as exc:
        raise PreconditionFailed(
            f"{implementation.name}: open_session() failed: {exc!r}"
        ) from exc
    recording = RecordingSession(opened)
    try:
        yield cast(Session, recording)
        left = opened.pending_error()
    finally:
        opened.close()
    if left is not None:
        _fail_pending(request.node, left)
    leaks.check(request.node, implementation, _ids_text(request.node))


def _ids_text(item: pytest.Item) -> str:
    return ", ".join(requirement_ids(item)) or "no requirement"


def _fail_pending(item: pytest.Item, error: str) -> None:
    ids = ", ".join(requirement_ids(item)) or "no requirement"
    pytest.fail(
        f"{error} was left pending after the test ({ids}): an API call "
        f"that succeeded, or whose error was read, must leave none",
        pytrace=False,
    )


def is_conformance_test(item: pytest.Item) -> bool:
    """Tell whether ``item`` names requirements or is a contract test."""
    return bool(requirement_ids(item)) or (
        item.get_closest_marker("contract") is not None
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> bool | None:
    """Run every conformance test in a child for in-process implementations.

    Whatever the implementation does to the process (segfault, abort,
    heap corruption, a hang), only that child dies: the test is reported
    as crashed or timed out and the run, and its report, go on.
    """
    state = item.config.stash.get(STATE, None)
    if (
        state is None
        or not state.implementation.in_process
        or state.isolation != "every"
        or not isolation.available()
        or not is_conformance_test(item)
    ):
        return None
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in isolation.run_protocol(item, state.timeout):
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run tests marked isolated in a child for in-process implementations."""
    state = pyfuncitem.config.stash.get(STATE, None)
    if (
        state is None
        or not state.implementation.in_process
        or pyfuncitem.get_closest_marker("isolated") is None
        or not isolation.available()
    ):
        return None

    def check() -> None:
        # The child's copy of the session fixture holds what the test
        # left; the parent's copy, checked at teardown, never saw it.
        if "session" in pyfuncitem.funcargs:
            opened = cast(Session, pyfuncitem.funcargs["session"])
            left = opened.pending_error()
            if left is not None:
                _fail_pending(pyfuncitem, left)
            leaks.check_isolated(
                pyfuncitem,
                state.implementation,
                opened,
                _ids_text(pyfuncitem),
            )

    isolation.run_isolated(pyfuncitem, check)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Mark a test crashed (or timed out) when an adapter says so."""
    report: pytest.TestReport = yield
    excinfo = call.excinfo
    if excinfo is None:
        return report
    names = {cls.__name__ for cls in type(excinfo.value).__mro__}
    # Matched by name: tests may import the adapter module under the
    # source-tree name as well as the installed one.
    if "ImplementationTimedOut" in names:
        item.user_properties.append(TIMEOUT_PROPERTY)
        report.user_properties.append(TIMEOUT_PROPERTY)
    elif "ImplementationCrashed" in names:
        item.user_properties.append(CRASH_PROPERTY)
        report.user_properties.append(CRASH_PROPERTY)
    if "PreconditionFailed" in names:
        report.user_properties.append(PRECONDITION_PROPERTY)
    if any(key == EVIDENCE_PROPERTY for key, _ in report.user_properties):
        return report
    evidence = _evidence(item, excinfo.value)
    report.user_properties.append((EVIDENCE_PROPERTY, evidence))
    state = item.config.stash.get(STATE, None)
    if state is not None and (report.failed or hasattr(report, "wasxfail")):
        _attribute(item, report, evidence, state)
    return report


def _attribute(
    item: pytest.Item,
    report: pytest.TestReport,
    evidence: dict[str, object],
    state: SuiteState,
) -> None:
    """Charge a failed check to the one requirement it belongs to.

    A check of a requirement the test does not name is a set-up step
    that failed: the test is an error, its own requirements keep their
    verdicts.  In a test naming several requirements, the failure counts
    against the requirement whose check failed only, and is expected
    when that requirement is.
    """
    named = evidence.get("requirement")
    ids = requirement_ids(item)
    if not isinstance(named, str) or not ids:
        return
    checked = [i for i in REQUIREMENT_ID.findall(named) if i in state.registry]
    if not checked:
        return
    blamed = [i for i in ids if i in checked]
    if not blamed:
        report.user_properties.append(PRECONDITION_PROPERTY)
        evidence["kind"] = "precondition"
        return
    if len(blamed) == len(ids):
        return
    report.user_properties.append((BLAME_PROPERTY, " ".join(blamed)))
    expected = [state.expectations.get(i) for i in blamed]
    if all(expected) and not hasattr(report, "wasxfail"):
        # What pytest's xfail marker would have done, for these
        # requirements only.
        report.outcome = "skipped"
        report.wasxfail = "; ".join(
            f"{e.requirement}: {e.reason}" for e in expected if e
        )


def _evidence(item: pytest.Item, exc: BaseException) -> dict[str, object]:
    """Say what the implementation did.

    The exception's observation, and the last calls the test made
    through its session.
    """
    evidence: dict[str, object] = {"kind": "assertion"}
    classes = {c.__name__ for c in type(exc).__mro__}
    if "ImplementationTimedOut" in classes:
        evidence = {"kind": "timeout", "detail": str(exc)}
        seconds = getattr(exc, "seconds", None)
        if isinstance(seconds, (int, float)):
            evidence["seconds"] = seconds
    elif "ImplementationCrashed" in classes:
        evidence = {"kind": "crash", "detail": str(exc)}
    elif isinstance(exc, PreconditionFailed):
        evidence = {"kind": "precondition", "detail": str(exc)}
    elif not isinstance(exc, (AssertionError, pytest.fail.Exception)):
        evidence = {"kind": "exception", "exception": type(exc).__name__}
    found = evidence_of(exc)
    if not found and str(exc):
        # A plain assert: its message says what was seen.
        evidence["detail"] = str(exc).split("\n")[0][:500]
    evidence.update(found)
    if evidence["kind"] == "assertion" and "requirement" not in evidence:
        # A plain assert names its requirement in its message, "(R-X-n)":
        # in a test of several requirements that one alone is charged.
        own = set(requirement_ids(item))
        cited = REQUIREMENT_ID.findall(str(exc).split("\n")[0])
        if cited and set(cited) <= own:
            evidence["requirement"] = " ".join(dict.fromkeys(cited))
    funcargs = getattr(item, "funcargs", {})
    recording = funcargs.get("session")
    if isinstance(recording, RecordingSession):
        calls = recording.calls()
        if calls:
            evidence["calls"] = calls
    return evidence


# -- results ----------------------------------------------------------------


class _Results:
    """Feeds test reports to the recorder (not on xdist workers)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record a report; the xdist controller sees every worker's."""
        self.recorder.add(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Compute the verdicts, write the report, fail on bad outcomes."""
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    if config.option.collectonly or session.exitstatus in _NO_VERDICT:
        # Verdicts of a run that did not run every collected test would
        # claim "untested" for what was never tried.
        return
    verdicts = compute_verdicts(
        state.registry,
        state.recorder.results.values(),
        state.expectations,
        state.recorder.contracts.values(),
    )
    state.verdicts = verdicts
    if state.report_path is not None:
        report = build_report(
            verdicts, state.implementation, state.capabilities
        )
        write_report(state.report_path, report)
    if verdicts.failing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the verdict per requirement, worst first, and the counts."""
    state = config.stash.get(STATE, None)
    if state is None or state.verdicts is None:
        return
    if not state.recorder.results and not state.recorder.contracts:
        # No conformance test ran (say, COEXTRA_IMPL is exported while
        # other tests run): a verdict would only list untested IDs.
        return
    impl = state.implementation
    terminalreporter.section(
        f"PEP {state.verdicts.registry.pep} conformance:"
        f" {impl.name} {impl.version}"
    )
    lines = summary_lines(
        state.verdicts, state.docs_url, verbose=config.option.verbose > 0
    )
    for line in lines:
        terminalreporter.write_line(line)
