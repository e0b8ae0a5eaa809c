#!/usr/bin/env python3
"""Run the conformance suite against the patched CPython 3.11.2.

Usage (from the repository root, in an environment where the suite and
the ``coextra-cpython`` adapter are installed)::

    python implementations/cpython-3.11/run_suite.py \
        --coextra-report=build/results/cpython-3.11-pep.json [pytest args...]

It builds the patched interpreter with ``build.py`` when the cache does
not hold an up-to-date build, then runs ``pytest --pyargs
coextra_conformance --coextra-impl=cpython`` with ``COEXTRA_PYTHON``
pointing at that interpreter.  Extra arguments go to pytest unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    """Build if needed, then run pytest; return pytest's exit status."""
    args = sys.argv[1:] if argv is None else argv
    build = subprocess.run(
        [sys.executable, str(HERE / "build.py")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    python = build.stdout.strip().splitlines()[-1]
    env = dict(os.environ, COEXTRA_PYTHON=python)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "coextra_conformance",
        "--coextra-impl=cpython",
        *args,
    ]
    print(f"COEXTRA_PYTHON={python}", file=sys.stderr, flush=True)
    return subprocess.run(cmd, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
