"""The expectations file: its checks and its strictness."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coextra_conformance.expectations import (
    Expectation,
    ExpectationError,
    load_expectations,
)

RunToy = Callable[..., tuple[pytest.RunResult, dict[str, Any]]]
KNOWN = ("R-STORE-1", "R-STORE-2", "R-FREE-4")


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    """Map requirement ID to outcome, for requirements that had tests."""
    return {
        r["id"]: r["outcome"] for r in report["requirements"] if r["tests"]
    }


def load(tmp_path: Path, text: str) -> dict[str, Expectation]:
    """Write ``text`` as an expectations file and load it."""
    path = tmp_path / "xfail.toml"
    path.write_text(text, encoding="utf-8")
    return load_expectations(path, KNOWN)


def test_valid_file(tmp_path: Path) -> None:
    """Defaults: outcome fail, no link."""
    loaded = load(
        tmp_path,
        '[R-STORE-1]\nreason = "leaks"\n'
        '[R-FREE-4]\nreason = " segfaults "\noutcome = "crashed"\n'
        'link = "https://example.org/1"\n',
    )
    assert loaded == {
        "R-STORE-1": Expectation("R-STORE-1", "leaks"),
        "R-FREE-4": Expectation(
            "R-FREE-4", "segfaults", "crashed", "https://example.org/1"
        ),
    }


def test_empty_file_expects_nothing(tmp_path: Path) -> None:
    """An empty file is valid."""
    assert load(tmp_path, "") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[R-STORE-9]\nreason = "x"\n',
            r"\[R-STORE-9\]: unknown requirement ID \(did you mean R-STORE-",
        ),
        ('[R-STORE-1]\nlink = "x"\n', r"\[R-STORE-1\]: missing reason"),
        ('[R-STORE-1]\nreason = ""\n', "missing reason"),
        (
            '[R-STORE-1]\nreason = "x"\nreasn = "y"\n',
            "unknown key 'reasn': use only link, outcome, reason",
        ),
        (
            '[R-STORE-1]\nreason = "x"\noutcome = "pass"\n',
            "outcome 'pass' is not one of fail, crashed",
        ),
        ('[R-STORE-1]\nreason = "x"\nlink = 3\n', "link must be a string"),
        ('R-STORE-1 = "x"\n', "expected a table"),
        ("[R-STORE-1\n", "not valid TOML"),
    ],
)
def test_invalid_file(tmp_path: Path, text: str, message: str) -> None:
    """Every problem names the file and the entry, in one line."""
    with pytest.raises(ExpectationError, match=message) as info:
        load(tmp_path, text)
    assert str(info.value).startswith(f"{tmp_path / 'xfail.toml'}: ")
    assert "\n" not in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    """A missing file says so."""
    with pytest.raises(ExpectationError, match="cannot read"):
        load_expectations(tmp_path / "none.toml", KNOWN)


def test_unknown_id_stops_the_run(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """An entry naming an unknown ID is a usage error, one line."""
    pytester.makepyfile("def test_a():\n    pass\n")
    pytester.makefile(".toml", xfail='[R-NOPE-1]\nreason = "x"\n')
    result, _ = run_toy("--coextra-expectations=xfail.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.errlines if line.strip()]
    assert line.startswith("ERROR: xfail.toml: [R-NOPE-1]: unknown ")


STRICTNESS_TESTS = """
import pytest

@pytest.mark.req("R-FREE-4")
def test_free_fails(session):
    assert 0

@pytest.mark.req("R-FREE-5")
def test_free_passes(session):
    pass

@pytest.mark.req("R-FREE-6")
def test_one_of_two_fails(session):
    assert 0

@pytest.mark.req("R-FREE-6")
def test_one_of_two_passes(session):
    pass
"""


def test_expected_failures_pass_the_run(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """Failing as expected is xfail, even if some of its tests pass."""
    pytester.makepyfile(STRICTNESS_TESTS.replace("R-FREE-5", "R-FREE-7"))
    pytester.makefile(
        ".toml",
        xfail='[R-FREE-4]\nreason = "a"\n[R-FREE-6]\nreason = "b"\n'
        '[R-FREE-5]\nreason = "no test of it runs"\n',
    )
    result, report = run_toy("--coextra-expectations=xfail.toml")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=1, xfailed=2, xpassed=1)
    result.stdout.fnmatch_lines(["unused expectation: R-FREE-5 came out*"])
    assert outcomes(report) == {
        "R-FREE-4": "xfail",
        "R-FREE-6": "xfail",
        "R-FREE-7": "pass",
    }


def test_unexpected_pass_fails_the_run(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """A requirement expected to fail that passes is xpass: exit 1."""
    pytester.makepyfile(STRICTNESS_TESTS)
    pytester.makefile(
        ".toml",
        xfail='[R-FREE-4]\nreason = "a"\n[R-FREE-5]\nreason = "b"\n'
        '[R-FREE-6]\nreason = "c"\n',
    )
    result, report = run_toy("--coextra-expectations=xfail.toml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(report)["R-FREE-5"] == "xpass"
    result.stdout.fnmatch_lines(["R-FREE-5 * MUST * xpass *"])


def test_wrong_kind_of_failure_fails_the_run(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """Expected to crash, merely failed: that is a plain fail."""
    pytester.makepyfile(STRICTNESS_TESTS)
    pytester.makefile(
        ".toml", xfail='[R-FREE-4]\nreason = "a"\noutcome = "crashed"\n'
    )
    result, report = run_toy(
        "--coextra-expectations=xfail.toml", "-k", "free_fails"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(report) == {"R-FREE-4": "fail"}


def test_expected_crash(run_toy: RunToy, pytester: pytest.Pytester) -> None:
    """A crash expected as such is xfail and keeps the run green."""
    pytester.makepyfile(
        """
        import os
        import signal
        import pytest

        @pytest.mark.req("R-FREE-3")
        @pytest.mark.isolated
        def test_crash(session):
            os.kill(os.getpid(), signal.SIGSEGV)
        """
    )
    pytester.makefile(
        ".toml", xfail='[R-FREE-3]\nreason = "a"\noutcome = "crashed"\n'
    )
    result, report = run_toy("--coextra-expectations=xfail.toml")
    assert result.ret == pytest.ExitCode.OK
    assert outcomes(report) == {"R-FREE-3": "xfail"}
    by_id = {r["id"]: r for r in report["requirements"]}
    assert by_id["R-FREE-3"]["tests"][0]["outcome"] == "crashed"


def test_test_of_several_requirements(
    run_toy: RunToy, pytester: pytest.Pytester
) -> None:
    """A failing test of an expected and an unexpected requirement fails.

    The failure cannot be pinned on the expected one, so the other
    requirement fails and so does the run.
    """
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.req("R-FREE-1", "R-FREE-2")
        def test_both(session):
            assert 0
        """
    )
    pytester.makefile(".toml", xfail='[R-FREE-1]\nreason = "a"\n')
    result, report = run_toy("--coextra-expectations=xfail.toml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    assert outcomes(report) == {"R-FREE-1": "xfail", "R-FREE-2": "fail"}
