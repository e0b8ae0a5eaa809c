"""Print the tox environments that ``make test`` runs on this machine.

Usage: ``python tools/which_envs.py``.  Prints one comma-separated list
for ``tox run -e``.  Every environment runs unless what it tests cannot
be had here; each one left out gets a line on stderr saying why and how
to get it:

* ``py36`` ... ``py313`` need that interpreter on ``PATH``;
* ``rust`` needs cargo;
* ``patched`` and ``patched-ft`` build CPython 3.13.15 with the PEP from
  source (default and free-threaded builds, several minutes each cold),
  so each runs when its up-to-date build is cached, or when
  ``COEXTRA_PATCHED=1`` asks for it (``make test COEXTRA_PATCHED=1``).
  ``patched-cpython-tests`` and ``patched-consumers`` are never part of
  ``make test``: run them with ``tox -e``.
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
PATCHED_ENVS = {"patched": "patched", "patched-ft": "patched-ft"}


def patched_build_is_cached(variant: str) -> bool:
    """Ask build.py whether a patched interpreter is built already."""
    script = REPO / "implementations" / "cpython-3.13" / "build.py"
    result = subprocess.run(
        [sys.executable, str(script), "--variant", variant, "--check"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


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
