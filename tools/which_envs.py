"""Print the tox environments that ``make test`` runs on this machine.

Usage: ``python tools/which_envs.py``.  Prints one comma-separated list
for ``tox run -e``.  Every environment runs unless what it tests cannot
be had here; each one left out gets a line on stderr saying why and how
to get it:

* ``py36`` ... ``py313`` need that interpreter on ``PATH``;
* ``rust`` needs cargo;
* ``patched`` builds CPython 3.13.15 with the PEP from source (several
  minutes cold), so it runs when its up-to-date build is cached, or when
  ``COEXTRA_PATCHED=1`` asks for it (``make test COEXTRA_PATCHED=1``).
  ``patched-cpython-tests`` and ``patched-consumers`` are never part of
  ``make test``: run them with ``tox -e``.
* ``py314`` and ``py315`` run Debian's CPython 3.14 and 3.15 inside a
  Debian ``sid`` root (built as root with mmdebstrap, about a minute), so
  they run when the root is cached, or when ``COEXTRA_SID=1`` asks;
* ``py313t`` and ``patched-ft`` (the free-threaded CPython 3.13.15,
  stock and patched) run when their build is cached, or when
  ``COEXTRA_FT=1`` asks (building what is missing);
* ``py313t-tsan`` and ``patched-ft-tsan`` (the thread requirements on the
  ThreadSanitizer builds, stock and patched) run only when
  ``COEXTRA_FT_TSAN=1`` asks: ThreadSanitizer slows the interpreter
  several times over, and the native-thread stress tests are the suite's
  heaviest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Environments that need nothing beyond what tox installs.
ALWAYS = ("reference", "meta", "lint", "docs", "asan", "memcheck", "bench")
CPYTHON_MINORS = range(6, 14)


#: tox environment -> the build.py variant it runs against.
PATCHED_ENVS = {"patched": "patched"}


def _check(script: Path, *args: str) -> bool:
    """Tell whether a build script's ``--check`` finds its result cached."""
    result = subprocess.run(
        [sys.executable, str(script), "--check", *args],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def sid_root_is_cached() -> bool:
    """Ask sid_root.py whether the Debian sid root is built already."""
    return _check(REPO / "implementations" / "cpython" / "sid_root.py")


def cpython313_is_cached(variant: str) -> bool:
    """Ask the 3.13 build script whether ``variant`` is built already."""
    script = REPO / "implementations" / "cpython-3.13" / "build.py"
    return _check(script, "--variant", variant)


def patched_build_is_cached(variant: str) -> bool:
    """Ask build.py whether a patched 3.13.15 variant is built already."""
    return cpython313_is_cached(variant)


def select(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Return the environments to run and the reasons for those left out."""
    chosen = list(ALWAYS)
    skipped: list[str] = []
    for minor in CPYTHON_MINORS:
        python = f"python3.{minor}"
        if shutil.which(python):
            chosen.append(f"py3{minor}")
        else:
            skipped.append(
                f"py3{minor}: {python} not on PATH "
                f"(install it, e.g. `pyenv install 3.{minor}`)"
            )
    if shutil.which("cargo"):
        chosen.append("rust")
    else:
        skipped.append("rust: cargo not on PATH (apt-get install cargo)")
    if env.get("COEXTRA_SID") == "1" or sid_root_is_cached():
        chosen += ["py314", "py315"]
    else:
        skipped.append(
            "py314, py315: the Debian sid root holding CPython 3.14 and "
            "3.15 is not built yet (as root, about a minute); run `make "
            "test COEXTRA_SID=1` or `tox -e py314`"
        )
    for name, variant in PATCHED_ENVS.items():
        if env.get("COEXTRA_PATCHED") == "1" or patched_build_is_cached(
            variant
        ):
            chosen.append(name)
        else:
            skipped.append(
                f"{name}: CPython 3.13.15 with the PEP ({variant} build) is "
                "not built yet (several minutes); run `make test "
                f"COEXTRA_PATCHED=1` or `tox -e {name}`"
            )
    # The free-threaded builds take about ten minutes each to build cold,
    # so, like `patched`, they run when cached or when asked.
    free_threaded = "free-threaded CPython 3.13.15"
    for name, variant, what in (
        ("py313t", "baseline-ft", free_threaded),
        ("patched-ft", "patched-ft", f"{free_threaded} with the PEP"),
    ):
        if env.get("COEXTRA_FT") == "1" or cpython313_is_cached(variant):
            chosen.append(name)
        else:
            skipped.append(
                f"{name}: {what} ({variant} build) is not built yet (about "
                "ten minutes); run `make test COEXTRA_FT=1` or "
                f"`tox -e {name}`"
            )
    for name, what in (
        ("py313t-tsan", "stock"),
        ("patched-ft-tsan", "patched"),
    ):
        if env.get("COEXTRA_FT_TSAN") == "1":
            chosen.append(name)
        else:
            skipped.append(
                f"{name}: the ThreadSanitizer build of {what} free-threaded "
                "CPython 3.13.15 runs only when asked (slow); run `make test "
                f"COEXTRA_FT_TSAN=1` or `tox -e {name}`"
            )
    return chosen, skipped


def main() -> int:
    """Print the selection on stdout and the omissions on stderr."""
    chosen, skipped = select(dict(os.environ))
    for line in skipped:
        print(f"make test: skipping {line}", file=sys.stderr)
    print(",".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
