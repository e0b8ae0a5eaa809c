"""The suite catches every deliberately broken implementation.

Each implementation of :mod:`coextra_conformance.broken` is the model with
one mutation.  The suite runs against it in a subprocess, and every
requirement in its ``EXPECTED_FAILURES`` must come out ``fail`` (or
``crashed``) in the JSON report.  Extra options for the subprocess (for
example ``-p coextra_conformance.plugin`` when the suite is not installed,
or ``-n 2``) can be given in ``COEXTRA_META_PYTEST_ARGS``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from coextra_conformance.broken import BROKEN, BrokenImplementation
from coextra_conformance.requirements import load_registry

CAUGHT = ("fail", "crashed")


def run_suite(impl: str, where: Path) -> tuple[int, dict[str, object], str]:
    """Run the shipped suite against ``impl``; return code, report, output."""
    report = where / "report.json"
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
        *shlex.split(os.environ.get("COEXTRA_META_PYTEST_ARGS", "")),
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


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_suite_catches_broken_implementation(
    name: str, tmp_path: Path
) -> None:
    """The suite reports each expected requirement as failed."""
    code, report, output = run_suite(
        f"coextra_conformance.broken:{name}", tmp_path
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
    assert summary["verdict"] != "conformant", (
        f"broken:{name} was judged conformant"
    )
