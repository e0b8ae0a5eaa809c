"""The executable model of the PEP passes the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_broken_caught import outcomes, run_suite

from coextra_conformance.adapter import Capability, Implementation, Session
from coextra_conformance.model import implementation
from coextra_conformance.requirements import load_registry

MODEL = "coextra_conformance.model:implementation"


def test_model_follows_the_adapter_protocols() -> None:
    """The model declares every capability but native threads."""
    assert isinstance(implementation, Implementation)
    assert implementation.capabilities == frozenset(Capability) - {
        Capability.NATIVE_THREADS
    }
    session = implementation.open_session()
    try:
        assert isinstance(session, Session)
    finally:
        session.close()


def test_model_passes_every_requirement(tmp_path: Path) -> None:
    """Against the model, every requirement of the registry is ``pass``."""
    code, report, output = run_suite(MODEL, tmp_path)
    got = outcomes(report)
    registry = load_registry()
    wrong = {
        i: got.get(i, "absent") for i in registry.ids if got.get(i) != "pass"
    }
    assert not wrong, f"model requirements not passing: {wrong}\n{output}"
    assert code == 0, output[-3000:]
    summary = report["summary"]
    assert isinstance(summary, dict)
    assert summary["verdict"] == "conformant", summary


def test_model_passes_under_xdist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite is correct when spread over two workers (-n 2)."""
    pytest.importorskip("xdist")
    extra = os.environ.get("COEXTRA_META_PYTEST_ARGS", "")
    monkeypatch.setenv("COEXTRA_META_PYTEST_ARGS", f"{extra} -n 2")
    code, report, output = run_suite(MODEL, tmp_path)
    assert code == 0, output[-3000:]
    assert set(outcomes(report).values()) == {"pass"}, output[-3000:]
