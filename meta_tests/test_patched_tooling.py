"""Fast tests of the patched CPython 3.13 tooling (cpython-3.13 folder).

They check the patch series and the build script's bookkeeping without
building anything.  Tests that need the CPython source skip cleanly when
the tarball is not in the cache (run ``build.py`` once to fetch it).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from types import ModuleType

import pytest

FOLDER = (
    Path(__file__).resolve().parent.parent / "implementations" / "cpython-3.13"
)


def load_build() -> ModuleType:
    """Import build.py from its folder (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "coextra_cpython313_build", FOLDER / "build.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build()


def test_series_is_numbered_consecutively() -> None:
    """The patches are 0001, 0002, ... with format-patch subjects."""
    patches = build.patch_series()
    assert patches, "no patch in the series"
    total = len(patches)
    for number, patch in enumerate(patches, start=1):
        assert patch.name.startswith(f"{number:04d}-")
        text = patch.read_text()
        assert f"Subject: [PATCH {number}/{total}] " in text
        assert "diff --git a/" in text


def test_series_has_no_machine_paths() -> None:
    """Patches carry no absolute path of the machine they were made on."""
    for patch in build.patch_series():
        text = patch.read_text()
        for marker in ("/work/", "/tmp/", "/root/", "/home/"):
            assert marker not in text, (patch.name, marker)


def test_build_key_follows_the_series(tmp_path: Path) -> None:
    """Changing one byte of one patch changes the build key."""
    tarball = tmp_path / build.TARBALL
    tarball.write_bytes(b"x")
    one = tmp_path / "0001-a.patch"
    one.write_text("first\n")
    key = build.build_key("patched", tarball, [one])
    assert build.build_key("patched", tarball, [one]) == key
    one.write_text("first!\n")
    assert build.build_key("patched", tarball, [one]) != key
    assert build.build_key("patched", tarball, []) != key
    # The free-threaded build of the same series is another build.
    assert build.build_key("patched-ft", tarball, [one]) != build.build_key(
        "patched", tarball, [one]
    )


def test_sync_touches_only_changed_files(tmp_path: Path) -> None:
    """sync_tree rewrites changed files, removes stale ones, keeps mtimes."""
    staging, src = tmp_path / "staging", tmp_path / "src"
    for tree in (staging, src):
        (tree / "sub").mkdir(parents=True)
        (tree / "same.c").write_text("same\n")
    (staging / "sub" / "changed.c").write_text("new\n")
    (src / "sub" / "changed.c").write_text("old\n")
    (src / "stale.c").write_text("gone\n")
    old = time.time() - 1000
    os.utime(src / "same.c", (old, old))
    assert build.sync_tree(staging, src) == 2
    assert (src / "sub" / "changed.c").read_text() == "new\n"
    assert not (src / "stale.c").exists()
    assert (src / "same.c").stat().st_mtime == pytest.approx(old)
    assert build.sync_tree(staging, src) == 0


def touched_files(patches: list[Path]) -> set[str]:
    """Return the paths the series modifies (a/ side of each diff)."""
    names: set[str] = set()
    for patch in patches:
        names.update(
            re.findall(r"^diff --git a/(\S+) b/", patch.read_text(), re.M)
        )
    return names


def test_series_applies_to_the_cached_source(tmp_path: Path) -> None:
    """Every patch applies cleanly, in order, to the pristine 3.13.15 tree."""
    tarball = build.cache_root() / "download" / build.TARBALL
    if not tarball.is_file():
        pytest.skip(f"no cached source ({tarball}); run build.py once")
    if shutil.which("patch") is None:
        pytest.skip("the patch program is not installed")
    patches = build.patch_series()
    wanted = {f"{build.TOPDIR}/{name}" for name in touched_files(patches)}
    # Extract only what the series touches: the whole tree is large.
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.name in wanted]
        assert len(members) == len(wanted), "patched file missing"
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(tmp_path, members=members, filter="tar")
        else:  # pragma: no cover - Pythons before 3.10.12
            tar.extractall(tmp_path, members=members)
    tree = tmp_path / build.TOPDIR
    for patch in patches:
        proc = subprocess.run(
            ["patch", "-p1", "--batch", "--forward", "-i", str(patch)],
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, (patch.name, proc.stdout, proc.stderr)
        assert "offset" not in proc.stdout, (patch.name, proc.stdout)
        assert "fuzz" not in proc.stdout, (patch.name, proc.stdout)
    header = (tree / "Include" / "cpython" / "code.h").read_text()
    assert "#define Py_HAVE_PEP9999 1" in header
    assert "#define CO_INLINE_EXTRA         0x20000000" in header


def test_interpreter_state_fields_are_appended() -> None:
    """The series adds PyInterpreterState fields only at its end."""
    text = "".join(p.read_text() for p in build.patch_series())
    diff = text.split("--- a/Include/internal/pycore_interp.h", 1)[1]
    diff = diff.split("\ndiff --git", 1)[0]
    removed = [
        ln
        for ln in diff.splitlines()
        if ln.startswith("-") and not ln.startswith("---")
    ]
    assert removed == [], "the series removes interpreter-state lines"
    hunks = diff.split("\n@@")[1:]
    assert len(hunks) == 1, "interpreter-state fields added in several places"
    assert "threads_preallocated;" in hunks[0], (
        "new fields are not after the last existing field"
    )
