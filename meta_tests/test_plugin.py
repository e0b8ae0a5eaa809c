"""The plugin's options, implementation loading, markers and isolation."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from coextra_conformance import options

RunToy = Callable[..., tuple[pytest.RunResult, dict[str, Any]]]


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    """Map requirement ID to outcome, for requirements that had tests."""
    return {
        r["id"]: r["outcome"] for r in report["requirements"] if r["tests"]
    }


def one_error_line(result: pytest.RunResult) -> str:
    """Assert a usage error of one line without traceback; return it."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.errlines if line.strip()]
    output = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in output
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR: ")
    return lines[0]


# -- option parsers -----------------------------------------------------------


def test_parse_impl_strips_and_refuses_empty() -> None:
    """Surrounding blanks go; an empty name is refused."""
    assert options.parse_impl(" model ") == "model"
    with pytest.raises(argparse.ArgumentTypeError, match="empty"):
        options.parse_impl("  ")


def test_parse_report_path_refuses_directory(tmp_path: Path) -> None:
    """The report goes to a file, never a directory."""
    assert options.parse_report_path("out/r.json") == Path("out/r.json")
    with pytest.raises(argparse.ArgumentTypeError, match="directory"):
        options.parse_report_path(str(tmp_path))


def test_parse_expectations_path_needs_a_file(tmp_path: Path) -> None:
    """The expectations file must exist."""
    path = tmp_path / "xfail.toml"
    with pytest.raises(argparse.ArgumentTypeError, match="not found"):
        options.parse_expectations_path(str(path))
    path.write_text("", encoding="utf-8")
    assert options.parse_expectations_path(str(path)) == path


@pytest.mark.parametrize("value", ["", "pep.html#r-store-2"])
def test_parse_docs_url_refuses_empty_and_fragment(value: str) -> None:
    """The base URL is a page; the plugin adds the anchor."""
    with pytest.raises(argparse.ArgumentTypeError):
        options.parse_docs_url(value)


def test_parse_docs_url_keeps_url() -> None:
    """A plain URL is kept as given."""
    url = "https://example.org/pep-9999.html"
    assert options.parse_docs_url(url) == url


def test_parse_profile() -> None:
    """Only the profiles the plugin registers are accepted."""
    assert options.parse_profile("explore") == "explore"
    with pytest.raises(argparse.ArgumentTypeError, match="ci, explore"):
        options.parse_profile("fast")


def test_help_lists_options_with_defaults(pytester: pytest.Pytester) -> None:
    """All options sit in one group and show their default."""
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*PEP 9999 conformance suite*"])
    text = result.stdout.str()
    for option in (
        "--coextra-impl=NAME",
        "--coextra-report=PATH",
        "--coextra-expectations=PATH",
        "--coextra-docs-url=URL",
        "--coextra-hypothesis-profile=NAME",
    ):
        assert option in text
    assert "Default: 'ci'" in text
    assert "coextra_suite_paths" in text


def test_bad_option_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A parser's refusal reaches the user as a usage error."""
    result = pytester.runpytest("--coextra-hypothesis-profile=fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown profile 'fast'*"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    """The markers are registered with their signatures."""
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.req(*ids):*",
            "@pytest.mark.requires(*capabilities):*",
            "@pytest.mark.isolated:*",
        ]
    )


# -- activation ---------------------------------------------------------------


def test_inert_without_implementation(pytester: pytest.Pytester) -> None:
    """Without an implementation, ordinary tests see no plugin."""
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "coextra:" not in result.stdout.str()
    assert "PEP 9999 conformance" not in result.stdout.str()


def suite_dir(pytester: pytest.Pytester, source: str) -> None:
    """Declare ``suite/`` a conformance-test directory holding ``source``."""
    pytester.makeini("[pytest]\ncoextra_suite_paths = suite\n")
    pytester.mkpydir("suite")
    pytester.path.joinpath("suite", "test_suite.py").write_text(source)


SUITE_TEST = """\
import pytest

@pytest.mark.req("R-STORE-2")
def test_round_trip(session):
    pass
"""


def test_suite_without_implementation_is_refused(
    pytester: pytest.Pytester,
) -> None:
    """Conformance tests without an implementation: one line, exit 4."""
    suite_dir(pytester, SUITE_TEST)
    line = one_error_line(pytester.runpytest("-p", "no:cacheprovider"))
    assert "no implementation selected: pass --coextra-impl=NAME or set " in (
        line
    )
    assert "COEXTRA_IMPL (available: " in line


def test_suite_without_implementation_is_refused_under_xdist(
    pytester: pytest.Pytester,
) -> None:
    """The controller refuses too, not an internal error."""
    suite_dir(pytester, SUITE_TEST)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: no implementation selected:*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_environment_variable_selects(
    pytester: pytest.Pytester, toy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COEXTRA_IMPL selects; the header shows COEXTRA_* variables."""
    monkeypatch.setenv("COEXTRA_IMPL", "toyimpl:implementation")
    monkeypatch.setenv("COEXTRA_EXTRA", "shown")
    pytester.makepyfile(SUITE_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "coextra: implementation toy 0.1 (in-process)",
            "coextra: capabilities: hooks",
            "coextra: spec *, * requirements, expectations: none",
            "coextra: COEXTRA_EXTRA=shown",
            "coextra: COEXTRA_IMPL=toyimpl:implementation",
        ]
    )


def test_option_overrides_environment(
    pytester: pytest.Pytester, toy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--coextra-impl wins over COEXTRA_IMPL."""
    monkeypatch.setenv("COEXTRA_IMPL", "no-such-implementation")
    pytester.makepyfile(SUITE_TEST)
    result = pytester.runpytest("--coextra-impl=toyimpl:factory")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["coextra: capabilities: threads"])


# -- resolution ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such-name", "unknown implementation 'no-such-name': *"),
        ("no_such_module:x", "module 'no_such_module' of * not found*"),
        ("toyimpl:missing", "module 'toyimpl' has no attribute 'missing'*"),
        ("toyimpl:not_an_impl", "'toyimpl:not_an_impl' gives a int, not an*"),
        ("toyimpl:failing_factory", "creating implementation * (OSError*"),
        ("./missing.so", "shared library './missing.so' not found*"),
        ("toyimpl:", "malformed implementation 'toyimpl:'*"),
    ],
)
def test_resolution_error_is_one_line(
    pytester: pytest.Pytester, toy: Path, spec: str, message: str
) -> None:
    """Each resolution problem is one line naming problem and fix."""
    pytester.makepyfile(SUITE_TEST)
    line = one_error_line(pytester.runpytest(f"--coextra-impl={spec}"))
    assert fnmatch(line, f"ERROR: {message}"), line


def test_unknown_name_lists_registered_names(
    pytester: pytest.Pytester,
) -> None:
    """An unknown name lists the registered ones."""
    from coextra_conformance.loading import available_names

    line = one_error_line(pytester.runpytest("--coextra-impl=nope"))
    assert f"(available: {', '.join(available_names())})" in line


def test_unloadable_library_is_one_line(pytester: pytest.Pytester) -> None:
    """A file that is no library is refused in one line."""
    pytester.path.joinpath("libbroken.so").write_text("not ELF")
    line = one_error_line(pytester.runpytest("--coextra-impl=libbroken.so"))
    assert "cannot load shared library 'libbroken.so'" in line


BAD_TABLE = """
#include "coextra_abi.h"

static const coextra_table table = {
    COEXTRA_ABI_VERSION + 98, sizeof(coextra_table), "bad", "0", 0
};

const coextra_table *
coextra_get_table(void)
{
    return &table;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_abi_mismatch_is_one_line(pytester: pytest.Pytester) -> None:
    """A library built for another ABI version is refused, with the fix."""
    include = resources.files("coextra_conformance").joinpath("abi")
    source = pytester.path / "bad.c"
    source.write_text(BAD_TABLE, encoding="utf-8")
    subprocess.run(
        ["cc", "-shared", "-fPIC", f"-I{include}", "-o", "libbad.so", source],
        cwd=pytester.path,
        check=True,
    )
    line = one_error_line(pytester.runpytest("--coextra-impl=libbad.so"))
    assert line.startswith("ERROR: cannot load shared library 'libbad.so': ")
    assert "C ABI version 99" in line
    assert "rebuild the library" in line


def test_callable_is_called(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """A zero-argument callable is called for the implementation."""
    pytester.makepyfile(SUITE_TEST)
    result, _ = run_toy(impl="toyimpl:factory")
    result.assert_outcomes(passed=1)


def test_capabilities_given_as_strings(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """Capability values given as strings are accepted."""
    pytester.makepyfile(SUITE_TEST)
    result, report = run_toy(impl="toyimpl:strings")
    result.assert_outcomes(passed=1)
    assert report["implementation"]["capabilities"] == ["hooks", "threads"]


# -- markers at collection ----------------------------------------------------


def test_unknown_requirement_is_a_collection_error(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """A req marker with an unknown ID fails collection."""
    pytester.makepyfile(
        test_ids="""
        import pytest

        @pytest.mark.req("R-STORE-2", "R-NOPE-1")
        def test_typo():
            pass
        """
    )
    result, _ = run_toy()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_ids.py*",
            "test_ids.py::test_typo: unknown requirement ID 'R-NOPE-1'*",
        ]
    )


def test_unknown_capability_is_a_collection_error(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """A requires marker with an unknown capability fails collection."""
    pytester.makepyfile(
        test_caps="""
        import pytest

        @pytest.mark.req("R-STORE-2")
        @pytest.mark.requires("telepathy")
        def test_odd():
            pass
        """
    )
    result, _ = run_toy()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*unknown capability 'telepathy'*"])


def test_suite_test_without_req_is_a_collection_error(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """A suite test without a req marker fails collection."""
    suite_dir(
        pytester, "class TestThing:\n    def test_bare(self):\n        pass\n"
    )
    result, _ = run_toy()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["suite/test_suite.py::TestThing::test_bare: no @pytest.mark.req*"]
    )


def test_contract_tests_need_no_req(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """The smoke layer opts out of the req rule with a visible marker."""
    suite_dir(
        pytester,
        "import pytest\n"
        "pytestmark = pytest.mark.contract\n"
        "def test_names(implementation):\n"
        "    assert implementation.name == 'toy'\n",
    )
    result, report = run_toy()
    result.assert_outcomes(passed=1)
    assert outcomes(report) == {}


def test_class_and_module_markers_count(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """Markers on the module and the class apply to the test."""
    suite_dir(
        pytester,
        "import pytest\n"
        "pytestmark = pytest.mark.req('R-STORE-1')\n"
        "@pytest.mark.req('R-STORE-2')\n"
        "class TestThing:\n"
        "    def test_a(self):\n"
        "        pass\n",
    )
    result, report = run_toy()
    result.assert_outcomes(passed=1)
    assert outcomes(report) == {"R-STORE-1": "pass", "R-STORE-2": "pass"}


def test_missing_capability_is_not_applicable(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """An undeclared capability skips as not-applicable, never pass."""
    pytester.makepyfile(
        """
        import pytest
        from coextra_conformance.adapter import Capability

        @pytest.mark.req("R-THREAD-1")
        @pytest.mark.requires(Capability.THREADS, Capability.HOOKS)
        def test_threads(session):
            raise AssertionError("must not run")

        @pytest.mark.req("R-HOOK-1")
        @pytest.mark.requires("hooks")
        def test_hooks(session):
            pass
        """
    )
    result, report = run_toy("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * not-applicable: toy does not declare threads"]
    )
    assert outcomes(report) == {
        "R-THREAD-1": "not-applicable",
        "R-HOOK-1": "pass",
    }


# -- fixtures -----------------------------------------------------------------


def test_session_fixture_fails_on_pending_error(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """An exception left pending fails the test, naming its IDs."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.req("R-STORE-6", "R-STORE-8")
        def test_leaves_error(session, implementation):
            session.pending = "SystemError"

        def test_sessions_closed(implementation):
            assert implementation.closed == 1
        """
    )
    # Out of process, so that both tests run in this process and the
    # second sees what the first one's teardown closed.
    result, report = run_toy(impl="toyimpl:remote")
    # pytest counts the passed call and the teardown error separately.
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*SystemError was left pending after the test "
            "(R-STORE-6, R-STORE-8)*"
        ]
    )
    assert outcomes(report) == {"R-STORE-6": "fail", "R-STORE-8": "fail"}


def test_junit_xml_names_requirements(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """JUnit XML carries the requirement IDs as properties."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.req("R-FREE-1", "R-FREE-2")
        def test_free():
            pass
        """
    )
    result, _ = run_toy("--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    xml = (pytester.path / "junit.xml").read_text()
    assert '<property name="requirement" value="R-FREE-1"' in xml
    assert '<property name="requirement" value="R-FREE-2"' in xml


PROFILE_TEST = """
import pytest
from hypothesis import settings

@pytest.mark.req("R-STORE-3")
def test_profile():
    assert settings.get_current_profile_name() == {name!r}
    assert settings.default.derandomize is {derandomize}
"""


@pytest.mark.parametrize(
    ("args", "name", "derandomize"),
    [
        ((), "ci", True),
        (("--coextra-hypothesis-profile=explore",), "explore", False),
    ],
)
def test_hypothesis_profile(
    run_toy: RunToy,
    pytester: pytest.Pytester,
    args: tuple[str, ...],
    name: str,
    derandomize: bool,
) -> None:
    """The chosen profile is loaded, and restored afterwards."""
    before = settings.get_current_profile_name()
    pytester.makepyfile(
        PROFILE_TEST.format(name=name, derandomize=derandomize)
    )
    result, _ = run_toy(*args)
    result.assert_outcomes(passed=1)
    assert settings.get_current_profile_name() == before


# -- isolation ----------------------------------------------------------------

ISOLATED_TESTS = """
import os
import shutil
import signal
import subprocess

import pytest

@pytest.mark.req("R-FREE-3")
@pytest.mark.isolated
def test_segfault(session):
    os.kill(os.getpid(), signal.SIGSEGV)

@pytest.mark.req("R-FREE-4")
@pytest.mark.isolated
def test_fails_in_child(session):
    assert 1 + 1 == 3, "arithmetic"

@pytest.mark.req("R-FREE-5")
@pytest.mark.isolated
def test_skips_in_child(session):
    pytest.skip("not-applicable: decided at run time")

@pytest.mark.req("R-FREE-6")
@pytest.mark.isolated
def test_leaves_error_in_child(session):
    session.pending = "SystemError"

@pytest.mark.req("R-FREE-7")
@pytest.mark.isolated
def test_exits_silently(session):
    os._exit(3)

@pytest.mark.req("R-FREE-8")
@pytest.mark.isolated
def test_passes_in_child(session):
    pass

@pytest.mark.req("R-FREE-9")
def test_after_the_crashes(session):
    pass
"""

LOST_WORKER_TEST = """
@pytest.mark.req("R-FREE-10")
def test_segfault_not_isolated(session):
    os.kill(os.getpid(), signal.SIGSEGV)
"""

ISOLATED_OUTCOMES = {
    "R-FREE-3": "crashed",
    "R-FREE-4": "fail",
    "R-FREE-5": "not-applicable",
    "R-FREE-6": "fail",
    "R-FREE-7": "crashed",
    "R-FREE-8": "pass",
    "R-FREE-9": "pass",
}


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_isolation_turns_a_crash_into_crashed(
    run_toy: RunToy, pytester: pytest.Pytester, xdist: bool
) -> None:
    """A crash in a forked child is crashed; the run goes on."""
    expected = dict(ISOLATED_OUTCOMES)
    source = ISOLATED_TESTS
    if xdist:
        # Not isolated: the crash takes the xdist worker down, and
        # xdist's report of the lost worker must still say crashed.
        source += LOST_WORKER_TEST
        expected["R-FREE-10"] = "crashed"
    pytester.makepyfile(source)
    args = ("-n", "2") if xdist else ()
    result, report = run_toy(*args, subprocess=xdist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # Every test runs whole in a child, so the error left pending fails
    # its teardown there: pytest counts its passed call and that error.
    result.assert_outcomes(passed=3, failed=3 + xdist, skipped=1, errors=1)
    assert outcomes(report) == expected
    messages = {
        r["id"]: r["tests"][0].get("message", "")
        for r in report["requirements"]
        if r["tests"]
    }
    number = int(signal.SIGSEGV)
    assert messages["R-FREE-3"] == (
        f"CRASHED: the isolated test process was killed by signal {number} "
        f"(SIGSEGV)"
    )
    assert "exited with status 3" in messages["R-FREE-7"]
    assert messages["R-FREE-4"].startswith("AssertionError: arithmetic")
    assert "SystemError was left pending" in messages["R-FREE-6"]


def test_isolated_test_runs_in_a_child(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """Only in-process implementations are forked."""
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.req("R-STORE-1")
        @pytest.mark.isolated
        def test_where():
            with open("pid.txt", "w") as out:
                out.write(str(os.getpid()))
        """
    )
    run_toy()[0].assert_outcomes(passed=1)
    assert int((pytester.path / "pid.txt").read_text()) != os.getpid()
    run_toy(impl="toyimpl:remote")[0].assert_outcomes(passed=1)
    assert int((pytester.path / "pid.txt").read_text()) == os.getpid()


def test_adapter_crash_is_crashed(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """ImplementationCrashed from an adapter means crashed."""
    pytester.makepyfile(
        """
        import pytest
        from toyimpl import Crashed

        @pytest.mark.req("R-HOOK-9")
        def test_worker_died(session):
            raise Crashed("worker process died with SIGABRT")
        """
    )
    result, report = run_toy(impl="toyimpl:remote")
    result.assert_outcomes(failed=1)
    assert outcomes(report) == {"R-HOOK-9": "crashed"}
