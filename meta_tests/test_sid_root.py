"""Fast tests of implementations/cpython/sid_root.py (nothing is built).

They check the one-line errors and the cache bookkeeping of the script
that builds the Debian sid root holding CPython 3.14 and 3.15.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = (
    Path(__file__).resolve().parent.parent
    / "implementations"
    / "cpython"
    / "sid_root.py"
)


@pytest.fixture
def sid_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import the script with its cache in a temporary directory."""
    spec = importlib.util.spec_from_file_location("coextra_sid_root", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("COEXTRA_CACHE", str(tmp_path))
    return module


def test_not_root_is_one_line(
    sid_root: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without root privileges the build stops with one line."""
    monkeypatch.setattr(sid_root.os, "geteuid", lambda: 1000)
    assert sid_root.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "needs root privileges" in err


def test_missing_mmdebstrap_is_one_line(
    sid_root: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without mmdebstrap the line says how to install it."""
    monkeypatch.setattr(sid_root.os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        sid_root.shutil,
        "which",
        lambda name: None if name == "mmdebstrap" else "/usr/bin/" + name,
    )
    assert sid_root.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "apt-get install mmdebstrap" in err


@pytest.mark.parametrize(
    "output",
    [
        "E: Unable to locate package python3.15-dev",
        "E: Package 'python3.15-dev' has no installation candidate",
        "Err:7 http://deb.debian.org/debian sid/main amd64 python3.15-dev "
        "amd64 3.15.2-1\n  404  Not Found\nE: Failed to fetch "
        "http://deb.debian.org/debian/pool/main/p/python3.15/"
        "python3.15-dev_3.15.2-1_amd64.deb  404  Not Found",
    ],
)
def test_refused_package_is_named(sid_root: ModuleType, output: str) -> None:
    """A package the archive refuses is named in the one-line error."""
    line = sid_root.explain_failure(output)
    assert "python3.15-dev" in line
    assert "refused package" in line
    assert "\n" not in line


def test_check_without_cache_fails(
    sid_root: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check builds nothing and exits 1 when no root is cached."""
    assert sid_root.main(["--check"]) == 1
    assert "no up-to-date sid root" in capsys.readouterr().err


def test_stamp_and_interpreters_make_the_cache(
    sid_root: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """A root counts as cached only with its stamp and both interpreters."""
    root = sid_root.root_dir()
    (root / "usr" / "bin").mkdir(parents=True)
    for python in sid_root.PYTHONS:
        (root / "usr" / "bin" / python).write_text("")
    assert sid_root.cached_root() is None
    stamp = sid_root.cache_dir() / "stamp"
    stamp.write_text(sid_root.build_key() + "\npython3.14 3.14.10\n")
    assert sid_root.cached_root() == root
    assert sid_root.main(["--check"]) == 0
    assert capsys.readouterr().out.strip() == str(root)
    stamp.write_text("another key\n")
    assert sid_root.cached_root() is None
