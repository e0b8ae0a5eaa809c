"""Tests of the repository tools: environment selection and PEP tables.

``tools/which_envs.py`` decides what ``make test`` runs; a missing
interpreter or toolchain must leave its environment out with a line
saying how to get it, and never drop the others.
``tools/gen_pep_tables.py`` derives the PEP's measured tables from the
committed results; the committed PEP must be current.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def which_envs() -> Iterator[ModuleType]:
    """Import tools/which_envs.py as a module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "tools"))
        yield importlib.import_module("which_envs")


@pytest.fixture(scope="module")
def gen_pep_tables() -> Iterator[ModuleType]:
    """Import tools/gen_pep_tables.py as a module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "tools"))
        yield importlib.import_module("gen_pep_tables")


#: The tox that the README's commands bootstrap (see the Makefile).
BOOTSTRAPPED_TOX = REPO / ".venv" / "bin" / "tox"


def test_every_tox_environment_resolves_its_interpreter() -> None:
    """No environment is refused before it starts.

    tox reads a name's factors as interpreter requests: a factor such as
    ``cpython`` in ``bench-cpython`` contradicts ``base_python = python3``
    unless the section says otherwise, and the environment then fails at
    once, whoever runs it.  ``tox config`` reports that per environment.
    """
    if not BOOTSTRAPPED_TOX.is_file():
        pytest.skip("no .venv/bin/tox: run make conformance once")
    proc = subprocess.run(
        [str(BOOTSTRAPPED_TOX), "config", "-e", "ALL", "-k", "base_python"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    sections = proc.stdout.split("[testenv:")[1:]
    assert len(sections) > 20, proc.stdout
    refused = [
        section.splitlines()[0].rstrip("]")
        for section in sections
        if "Exception" in section
    ]
    assert not refused, f"tox refuses these environments: {refused}"


def test_missing_tools_drop_only_their_environments(
    which_envs: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No python3.6 and no cargo: py36 and rust go, the rest stays."""
    real_which = shutil.which

    def which(name: str) -> str | None:
        return None if name in ("python3.6", "cargo") else real_which(name)

    monkeypatch.setattr(which_envs.shutil, "which", which)
    monkeypatch.setattr(
        which_envs, "cpython313_is_cached", lambda variant: False
    )
    chosen, skipped = which_envs.select({})
    assert "py36" not in chosen
    assert "rust" not in chosen
    assert "patched" not in chosen
    assert "patched-ft" not in chosen
    assert {"reference", "meta", "lint", "docs", "py37"} <= set(chosen)
    reasons = "\n".join(skipped)
    assert "pyenv install 3.6" in reasons
    assert "apt-get install cargo" in reasons
    assert "COEXTRA_PATCHED=1" in reasons


def test_patched_runs_when_asked(
    which_envs: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COEXTRA_PATCHED=1 adds the patched environments without a cache."""
    monkeypatch.setattr(
        which_envs, "cpython313_is_cached", lambda variant: False
    )
    chosen, _ = which_envs.select({"COEXTRA_PATCHED": "1"})
    assert "patched" in chosen
    assert "patched-ft" not in chosen
    chosen, _ = which_envs.select({"COEXTRA_PATCHED": "1", "COEXTRA_FT": "1"})
    assert {"patched", "patched-ft", "py313t"} <= set(chosen)


def test_patched_runs_when_its_build_is_cached(
    which_envs: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each patched environment runs when its own build is cached."""
    monkeypatch.setattr(
        which_envs, "cpython313_is_cached", lambda v: v == "patched"
    )
    chosen, skipped = which_envs.select({})
    assert "patched" in chosen
    assert "patched-ft" not in chosen
    assert any("COEXTRA_FT=1" in line for line in skipped)


def test_newer_cpythons_run_when_cached_or_asked(
    which_envs: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """py314/py315/py313t[-tsan]: left out, with a reason, unless cached."""
    monkeypatch.setattr(which_envs, "sid_root_is_cached", lambda: False)
    monkeypatch.setattr(which_envs, "cpython313_is_cached", lambda v: False)
    chosen, skipped = which_envs.select({})
    assert not {"py314", "py315", "py313t", "py313t-tsan"} & set(chosen)
    reasons = "\n".join(skipped)
    for variable in ("COEXTRA_SID=1", "COEXTRA_FT=1", "COEXTRA_FT_TSAN=1"):
        assert variable in reasons
    asked = {"COEXTRA_SID": "1", "COEXTRA_FT": "1", "COEXTRA_FT_TSAN": "1"}
    chosen, _ = which_envs.select(asked)
    assert {
        "py314",
        "py315",
        "py313t",
        "py313t-tsan",
        "patched-ft-tsan",
    } <= set(chosen)
    monkeypatch.setattr(which_envs, "sid_root_is_cached", lambda: True)
    monkeypatch.setattr(
        which_envs, "cpython313_is_cached", lambda v: v == "baseline-ft"
    )
    chosen, _ = which_envs.select({})
    assert {"py314", "py315", "py313t"} <= set(chosen)
    # patched-ft's own build is not cached; the TSan build runs only
    # when asked, cached or not.
    assert not {"py313t-tsan", "patched-ft"} & set(chosen)
    monkeypatch.setattr(which_envs, "cpython313_is_cached", lambda v: True)
    chosen, _ = which_envs.select({})
    assert {"py313t", "patched-ft"} <= set(chosen)
    assert not {"py313t-tsan", "patched-ft-tsan"} & set(chosen)


def test_committed_pep_tables_are_current(gen_pep_tables: ModuleType) -> None:
    """The PEP's generated blocks match the committed results."""
    pep = REPO / "pep" / "pep-9999.rst"
    text = pep.read_text(encoding="utf-8")
    assert gen_pep_tables.regenerate(text) == text, (
        "pep/pep-9999.rst is stale: run tox -e regen"
    )


def test_deviation_rows_come_from_the_reports(
    gen_pep_tables: ModuleType, tmp_path: Path
) -> None:
    """A failing requirement in one report gives a row and its reason."""
    report = {
        "requirements": [
            {"id": "R-STORE-1", "level": "MUST", "outcome": "pass"},
            {
                "id": "R-FREE-5",
                "level": "MUST",
                "outcome": "xfail",
                "expectation": {
                    "reason": "_PyCode_SetExtra frees a *re-stored* value.",
                    "link": "https://github.com/python/cpython/issues/1",
                },
            },
        ]
    }
    (tmp_path / "cpython-3.9.json").write_text(json.dumps(report))
    lines = gen_pep_tables.deviations_block(tmp_path)
    text = "\n".join(lines)
    assert ":ref:`R-FREE-5 <r-free-5>` (MUST)" in text
    assert "R-STORE-1 <r-store-1>` (MUST)" not in text
    assert "*3.9:* \\_PyCode\\_SetExtra frees a \\*re-stored\\* value." in text
    assert "`gh-1 <https://github.com/python/cpython/issues/1>`__" in text
