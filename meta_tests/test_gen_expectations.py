"""tools/gen_expectations.py: expectations files from observed runs.

The tool keeps hand-written reasons, links and comments, follows the
observed outcome, drops entries that no longer fail, and rewrites only
the measured block of the header.  The committed CPython expectations
must be what the tool writes from the committed reports.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "gen_expectations.py"


@pytest.fixture(scope="module")
def gen() -> Iterator[ModuleType]:
    """Import tools/gen_expectations.py as a module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "tools"))
        yield importlib.import_module("gen_expectations")


def requirement(rid: str, outcome: str, *tests: tuple[str, str]) -> Any:
    """Make one requirement entry of a report."""
    return {
        "id": rid,
        "outcome": outcome,
        "tests": [
            {"nodeid": f"t::{rid}", "outcome": o, "duration": 0, "message": m}
            for o, m in tests
        ],
    }


REPORT = {
    "implementation": {
        "name": "toy",
        "version": "9.9",
        "capabilities": ["hooks", "threads"],
    },
    "requirements": [
        requirement("R-INDEX-2", "xfail", ("failed", "only 254")),
        requirement("R-INDEX-3", "xpass", ("passed", "")),
        requirement("R-FREE-4", "crashed", ("crashed", "CRASHED: SIGSEGV")),
        requirement("R-FREE-5", "fail", ("failed", 'freed "twice"')),
        requirement("R-FREE-6", "pass", ("passed", "")),
    ],
}

OLD = """\
# Deviations of toy.
# Hand-written header line.

# Source: the request function.
[R-INDEX-2]
reason = "Only 254 indices."
link = "https://example.org/2"

# Source: fixed since.
[R-INDEX-3]
reason = "No exception."

[R-FREE-4]
reason = "Frees NULL."
"""


def test_keeps_reasons_follows_outcomes_drops_fixed(gen: ModuleType) -> None:
    """Reasons, links and comments survive; outcomes are observed."""
    text, dropped = gen.generate(REPORT, OLD, "toy.json")
    assert dropped == ["R-INDEX-3"]
    assert text.startswith("# Deviations of toy.\n# Hand-written header")
    assert "# -- measured" in text
    assert "toy 9.9 (toy.json)" in text
    assert "Capabilities declared: hooks, threads." in text
    assert "# Source: the request function.\n[R-INDEX-2]\n" in text
    assert 'link = "https://example.org/2"' in text
    assert "fixed since" not in text
    assert (
        '[R-FREE-4]\nreason = """\\\nFrees NULL."""\noutcome = "crashed"'
        in (text)
    )
    decoded = gen.tomllib.loads(text)
    assert decoded["R-FREE-5"]["reason"] == 'Observed: freed "twice"'
    assert set(decoded) == {"R-INDEX-2", "R-FREE-4", "R-FREE-5"}
    again, dropped = gen.generate(REPORT, text, "toy.json")
    assert again == text, "a second run must change nothing"
    assert dropped == []


def test_placeholder_follows_the_observation(gen: ModuleType) -> None:
    """An ``Observed:`` reason is refreshed; a written one is kept."""
    text, _ = gen.generate(REPORT, OLD, "toy.json")
    report = json.loads(json.dumps(REPORT))
    for entry in report["requirements"]:
        if entry["id"] in ("R-FREE-5", "R-INDEX-2"):
            entry["tests"][0]["message"] = "freed three times"
    again, _ = gen.generate(report, text, "toy.json")
    decoded = gen.tomllib.loads(again)
    assert decoded["R-FREE-5"]["reason"] == "Observed: freed three times"
    assert decoded["R-INDEX-2"]["reason"] == "Only 254 indices."


#: The stock CPython expectations (the patched builds' files are checked
#: by their own tests).
EXPECTATIONS = sorted(REPO.glob("implementations/cpython/expectations/*.toml"))


@pytest.mark.parametrize(
    "path", EXPECTATIONS, ids=lambda p: str(p.relative_to(REPO))
)
def test_committed_reasons_state_causes(gen: ModuleType, path: Path) -> None:
    """No committed expectation reason is the tool's ``Observed:`` quote.

    A reason says which behaviour of the implementation makes the
    requirement fail; a quoted assertion message does not.
    """
    entries = gen.tomllib.loads(path.read_text(encoding="utf-8"))
    quoted = sorted(
        key
        for key, entry in entries.items()
        if gen.is_placeholder(entry.get("reason", ""))
    )
    assert not quoted, (
        f"{path.relative_to(REPO)}: the reasons of {', '.join(quoted)} only "
        f"quote what a test printed; write the cause instead"
    )


def test_bad_report_is_refused(tmp_path: Path) -> None:
    """A file that is not a report gets a one-line error and exit 2."""
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(TOOL), str(bad), str(tmp_path / "x.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "not a conformance report" in done.stderr


@pytest.mark.parametrize(
    "version",
    [
        "3.6",
        "3.7",
        "3.8",
        "3.9",
        "3.10",
        "3.11",
        "3.12",
        "3.13",
        "3.13t",
        "3.14",
        "3.15",
    ],
)
def test_committed_cpython_expectations_are_current(version: str) -> None:
    """Each expectations file is what its committed report gives."""
    report = REPO / "results" / f"cpython-{version}.json"
    path = REPO / "implementations" / "cpython" / "expectations"
    done = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            str(report),
            str(path / f"{version}.toml"),
            "--check",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    assert not [
        r["id"]
        for r in data["requirements"]
        if r["outcome"] in ("fail", "xpass", "error", "crashed")
    ], f"cpython-{version}.json has failing cells"
