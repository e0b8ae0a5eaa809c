"""Fixtures for the suite's own tests: toy implementations in pytester."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

# Toy implementations, written into each pytester directory as
# ``toyimpl.py``.  They implement only what the plugin itself calls, so
# that the plugin's tests depend neither on the model nor on the real
# conformance tests.
TOY_IMPLEMENTATIONS = """
from coextra_conformance.adapter import Capability, ImplementationCrashed


class ToySession:
    def __init__(self, impl):
        self.impl = impl
        self.pending = None
        self.closed = False

    def pending_error(self):
        pending, self.pending = self.pending, None
        return pending

    def close(self):
        self.closed = True
        self.impl.closed += 1


class Toy:
    name = "toy"
    version = "0.1"

    def __init__(self, capabilities=("hooks",), in_process=True):
        self.capabilities = frozenset(Capability(c) for c in capabilities)
        self.in_process = in_process
        self.closed = 0

    def open_session(self):
        return ToySession(self)


implementation = Toy()
remote = Toy(in_process=False)
strings = Toy()
strings.capabilities = frozenset({"threads", "hooks"})


def factory():
    return Toy(capabilities=("threads",))


def failing_factory():
    raise OSError("no such device")


not_an_impl = 42


class Crashed(ImplementationCrashed):
    pass
"""


@pytest.fixture(autouse=True)
def _no_selected_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a COEXTRA_IMPL of the caller's shell out of inner runs."""
    monkeypatch.delenv("COEXTRA_IMPL", raising=False)


@pytest.fixture
def toy(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write ``toyimpl.py`` and make it importable in and out of process."""
    path = pytester.makepyfile(toyimpl=TOY_IMPLEMENTATIONS)
    pytester.syspathinsert()
    python_path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(filter(None, [str(pytester.path), python_path])),
    )
    return path


#: run_toy(*args, impl=..., subprocess=False) -> (result, report or {}).
RunToy = Callable[..., tuple[pytest.RunResult, dict[str, Any]]]


@pytest.fixture
def run_toy(pytester: pytest.Pytester, toy: Path) -> RunToy:
    """Return a function running pytest against a toy implementation.

    The inner run writes ``report.json``; the function returns the run's
    result and the decoded report (empty if none was written).
    """

    def run(
        *args: str,
        impl: str = "toyimpl:implementation",
        subprocess: bool = False,
    ) -> tuple[pytest.RunResult, dict[str, Any]]:
        report = pytester.path / "report.json"
        report.unlink(missing_ok=True)
        options = [f"--coextra-impl={impl}", f"--coextra-report={report}"]
        options += ["-p", "no:cacheprovider", *args]
        if subprocess:
            result = pytester.runpytest_subprocess(*options)
        else:
            result = pytester.runpytest(*options)
        data: dict[str, Any] = {}
        if report.exists():
            data = json.loads(report.read_text(encoding="utf-8"))
        return result, data

    return run
