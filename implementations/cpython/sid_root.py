#!/usr/bin/env python3
"""Build, once, a Debian ``sid`` root file system with CPython 3.14 and 3.15.

Usage::

    python3 implementations/cpython/sid_root.py           # build if needed
    python3 implementations/cpython/sid_root.py --check   # cached? (no build)

Debian's ``sid`` ships CPython 3.14 and 3.15 as binary packages only, and
those binaries need a newer C library than a Debian 12 host has.  They run
unchanged inside a ``sid`` root file system: ``mmdebstrap`` makes one from
Debian's archive with the interpreters, their headers (``-dev``) and the
compiler the adapter needs to build its helper against those headers.

The last line printed on stdout is the root's directory; progress goes to
stderr.  The script is idempotent: a root whose build key (the package
list, the suite and this procedure's version) is unchanged answers at once.

Cache: ``$COEXTRA_CACHE/sid-root`` or ``~/.cache/coextra/sid-root``,
outside the checkout.  The root is made in a temporary directory beside
the cache entry and renamed into place only when it is complete and its
interpreters run, so a failed build leaves nothing that looks cached;
concurrent invocations wait for each other (a lock file).

Needs root privileges (``mmdebstrap --mode=root`` and ``chroot``) and the
``mmdebstrap`` package (``apt-get install mmdebstrap``).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = "sid"
ARCHIVE = "http://deb.debian.org/debian"
#: The interpreters the root provides, as commands inside it.
PYTHONS = ("python3.14", "python3.15")
PACKAGES = (
    "python3.14",
    "python3.14-dev",
    "python3.15",
    "python3.15-dev",
    "gcc",
    "libc6-dev",
)
#: Bump when the procedure changes in a way that needs a rebuild.
PROCEDURE_VERSION = "1"


class RootError(Exception):
    """A step failed; the message is the one line the user sees."""


def log(msg: str) -> None:
    """Report progress on stderr (stdout carries only the result)."""
    print(f"[sid_root.py] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Return the cache entry holding the root and its stamp."""
    env = os.environ.get("COEXTRA_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "coextra"
    return base / "sid-root"


def root_dir() -> Path:
    """Return where the root file system lives once built."""
    return cache_dir() / "root"


def build_key() -> str:
    """Hash everything that determines the root's content."""
    h = hashlib.sha256()
    for part in (PROCEDURE_VERSION, SUITE, *PACKAGES):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def cached_root() -> Path | None:
    """Return the root if an up-to-date one is cached, else None.

    Nothing is built: ``tools/which_envs.py`` and the tox environments use
    this to decide whether the root is there.
    """
    stamp = cache_dir() / "stamp"
    root = root_dir()
    if not stamp.is_file() or stamp.read_text().split("\n")[0] != build_key():
        return None
    if all((root / "usr" / "bin" / p).is_file() for p in PYTHONS):
        return root
    return None


@contextmanager
def cache_lock() -> Iterator[None]:
    """Serialise builds of the root across processes."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: apt's ways of saying the archive does not have a package.
_REFUSED = (
    re.compile(r"Unable to locate package (\S+)"),
    re.compile(r"Package '?([^' ]+)'? has no installation candidate"),
    re.compile(r"Couldn't find any package by \S+ '([^']+)'"),
    re.compile(r"\b([a-z0-9.+-]+) : Depends: .*"),
    re.compile(r"Failed to fetch \S+/([^/_\s]+)_\S+\s+404"),
)


def explain_failure(output: str) -> str:
    """Turn mmdebstrap's output into the one line the user sees."""
    for pattern in _REFUSED:
        match = pattern.search(output)
        if match:
            return (
                f"the {SUITE} archive at {ARCHIVE} refused package "
                f"{match[1]} ({match[0].strip()}); check that {SUITE} "
                f"still ships it (apt-cache policy on a {SUITE} system) or "
                f"edit PACKAGES in {Path(__file__).name}"
            )
    if re.search(
        r"Temporary failure resolving|Could not resolve|"
        r"Failed to fetch|Connection failed",
        output,
    ):
        return (
            f"mmdebstrap could not download from {ARCHIVE}; check network "
            "access to Debian's archive"
        )
    errors = [line for line in output.splitlines() if "E:" in line]
    last = (errors or output.strip().splitlines() or ["no output"])[-1]
    return f"mmdebstrap failed: {last.strip()}"


def check_prerequisites() -> str:
    """Return mmdebstrap's path, or raise with what is missing."""
    if os.geteuid() != 0:
        raise RootError(
            "building the sid root needs root privileges (mmdebstrap "
            "--mode=root, chroot); run this script as root, e.g. with sudo"
        )
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise RootError(
            "mmdebstrap is not installed; install it with "
            "`apt-get install mmdebstrap`"
        )
    if shutil.which("chroot") is None:
        raise RootError("chroot is not on PATH; install coreutils")
    return mmdebstrap


def python_versions(root: Path) -> dict[str, str]:
    """Run each interpreter inside ``root``; return its full version."""
    versions = {}
    for python in PYTHONS:
        result = subprocess.run(
            [
                "chroot",
                str(root),
                python,
                "-c",
                "import platform; print(platform.python_version())",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["no output"]
            raise RootError(
                f"{python} does not run inside the new root ({lines[-1]}); "
                "rebuild with --force"
            )
        versions[python] = result.stdout.strip()
    return versions


def build(force: bool) -> Path:
    """Ensure the root is built; return its directory."""
    mmdebstrap = check_prerequisites()
    cache = cache_dir()
    root = root_dir()
    stamp = cache / "stamp"
    with cache_lock():
        if not force and cached_root() is not None:
            log(f"up to date ({build_key()[:12]})")
            return root
        started = time.monotonic()
        stamp.unlink(missing_ok=True)
        partial = cache / "root.partial"
        shutil.rmtree(partial, ignore_errors=True)
        command = [
            mmdebstrap,
            "--mode=root",
            "--variant=apt",
            # The archive's sid Release file can be past its Valid-Until.
            '--aptopt=Acquire::Check-Valid-Until "false"',
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(partial),
            ARCHIVE,
        ]
        log("$ " + " ".join(command))
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                sys.stderr.write(result.stderr[-4000:])
                raise RootError(explain_failure(result.stdout + result.stderr))
            versions = python_versions(partial)
            if root.exists():
                shutil.rmtree(root)
            partial.rename(root)
        except BaseException:
            # Nothing half-built may look cached.
            shutil.rmtree(partial, ignore_errors=True)
            raise
        lines = [build_key(), *(f"{p} {v}" for p, v in versions.items())]
        stamp.write_text("\n".join(lines) + "\n")
        log(
            f"built in {time.monotonic() - started:.0f} s: "
            + ", ".join(f"{p} {v}" for p, v in versions.items())
        )
        return root


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="only tell whether an up-to-date root is cached: print its "
        "directory and exit 0, or exit 1 (nothing is built)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when the cached root is up to date",
    )
    args = parser.parse_args(argv)
    if args.check:
        root = cached_root()
        if root is None:
            print(
                f"sid_root.py: no up-to-date sid root in {cache_dir()}; "
                f"build it with `python3 {Path(__file__).name}` (as root, "
                "about a minute)",
                file=sys.stderr,
            )
            return 1
        print(root)
        return 0
    try:
        root = build(args.force)
    except RootError as exc:
        print(f"sid_root.py: {exc}", file=sys.stderr)
        return 1
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
