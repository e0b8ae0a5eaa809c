#!/usr/bin/env python3
"""Run the conformance suite against a patched CPython 3.13.15 build.

Usage (from the repository root, in an environment where the suite and
the ``coextra-cpython`` adapter are installed)::

    python implementations/cpython-3.13/run_suite.py --variant patched \
        --coextra-report=results/cpython-3.13-pep.json [pytest args...]

``--variant`` is ``patched`` (default build) or ``patched-ft``
(free-threaded).  The script builds that variant with ``build.py`` when
the cache does not hold an up-to-date build (minutes; the build is
cached for every later run), then runs ``pytest --pyargs
coextra_conformance --coextra-impl=cpython`` with ``COEXTRA_PYTHON``
naming the installed interpreter: the stock-CPython adapter drives it out
of process and detects the PEP 9999 API from its headers.  Every other
argument goes to pytest unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATCHED_VARIANTS = ("patched", "patched-ft", "patched-ft-tsan")


def split_variant(args: list[str]) -> tuple[str, list[str]]:
    """Take ``--variant V`` / ``--variant=V`` out of the arguments."""
    variant = "patched"
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--variant":
            variant = next(it, "")
        elif arg.startswith("--variant="):
            variant = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return variant, rest


def main(argv: list[str] | None = None) -> int:
    """Build if needed, then run pytest; return pytest's exit status."""
    variant, pytest_args = split_variant(
        sys.argv[1:] if argv is None else argv
    )
    if variant not in PATCHED_VARIANTS:
        print(
            f"run_suite.py: unknown variant {variant!r}; use one of "
            f"{', '.join(PATCHED_VARIANTS)}",
            file=sys.stderr,
        )
        return 2
    build = subprocess.run(
        [sys.executable, str(HERE / "build.py"), "--variant", variant],
        check=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    if build.returncode != 0:
        # build.py has printed its one-line reason on stderr.
        return build.returncode
    python = build.stdout.strip().splitlines()[-1]
    env = dict(os.environ, COEXTRA_PYTHON=python)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "coextra_conformance",
        "--coextra-impl=cpython",
        *pytest_args,
    ]
    print(f"COEXTRA_PYTHON={python}", file=sys.stderr, flush=True)
    return subprocess.run(cmd, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
