"""Install the Debian packages a test environment needs, when missing.

Usage: ``python tools/ensure_debian_packages.py PROGRAM [PROGRAM ...]``.
Each PROGRAM is a command that must be on PATH; the Debian package that
provides it is installed with apt-get when the program is missing and we
run as root.  Otherwise one line says what is missing and how to get it,
and the exit status is 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

#: Program on PATH -> Debian package that provides it.
PACKAGES = {"chromium": "chromium"}


def apt_install(packages: list[str]) -> bool:
    """Install ``packages`` with apt-get; return whether it worked."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = [
        ["apt-get", "update", "-qq"],
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *packages,
        ],
    ]
    for step in steps:
        result = subprocess.run(
            step, env=env, stdin=subprocess.DEVNULL, check=False
        )
        if result.returncode != 0:
            return False
    return True


def main(programs: list[str]) -> int:
    """Install what is missing; return the exit status."""
    missing = [p for p in programs if shutil.which(p) is None]
    if not missing:
        return 0
    packages = [PACKAGES.get(p, p) for p in missing]
    can_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if can_install and apt_install(packages):
        still = [p for p in missing if shutil.which(p) is None]
        if not still:
            return 0
        missing = still
    print(
        f"error: {', '.join(missing)} not found on PATH: install it "
        f"with `apt-get install {' '.join(packages)}` (as root)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
