#!/usr/bin/env python3
"""Run CPython's own regression tests on the patched 3.11.2 build.

Usage (from the repository root)::

    python implementations/cpython-3.11/run_cpython_tests.py \
        test_code test_capi test_marshal test_sys

The tests run from the build directory with ``./python -m test``:
``make install`` of 3.11.2 does not install the ``test_capi`` package,
so the installed interpreter cannot run it.  The build must exist
(``build.py`` makes it); the exit status is regrtest's.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Run regrtest with ``argv`` as its test names."""
    if not argv:
        print(
            "run_cpython_tests.py: name the tests to run, e.g. test_code",
            file=sys.stderr,
        )
        return 2
    builder = runpy.run_path(str(HERE / "build.py"))
    if builder["cached_build"]("patched") is None:
        print(
            "run_cpython_tests.py: the patched build is missing or out of "
            "date: run `python implementations/cpython-3.11/build.py` first",
            file=sys.stderr,
        )
        return 2
    build_dir = builder["cache_root"]() / "patched" / "build"
    cmd = ["./python", "-m", "test", "--quiet", *argv]
    print(f"$ (cd {build_dir} && {' '.join(cmd)})", file=sys.stderr)
    return subprocess.run(cmd, cwd=build_dir, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
