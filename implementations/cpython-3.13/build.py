#!/usr/bin/env python3
"""Fetch, patch and build CPython 3.13.15, default and free-threaded.

Usage::

    python3 implementations/cpython-3.13/build.py --variant patched
    python3 implementations/cpython-3.13/build.py --variant baseline-ft
    python3 implementations/cpython-3.13/build.py --variant patched --check

Variants (``--list`` prints them):

========================  =========  ==================================
variant                   patched    configure options
========================  =========  ==================================
``baseline``              no         (default build, with the GIL)
``baseline-ft``           no         ``--disable-gil``
``baseline-ft-tsan``      no         ``--disable-gil --with-thread-sanitizer``
``patched``               yes        (default build, with the GIL)
``patched-ft``            yes        ``--disable-gil``
``patched-ft-tsan``       yes        ``--disable-gil --with-thread-sanitizer``
========================  =========  ==================================

The last line printed on stdout is the installed interpreter; progress
goes to stderr.  The script is idempotent: a variant whose build key (the
tarball, the patch series, the configure options and this procedure's
version) is unchanged answers at once.  A changed series re-extracts a
clean tree, applies it, and writes into the variant's source tree only
the files whose content changed, so ``make`` recompiles what changed.

Source: Debian's ``python3.13_3.13.15.orig.tar.xz`` (the upstream tree).
It is fetched once with ``apt-get source`` from the ``sid`` suite using a
private source list and private package lists inside the cache (apt's
``Dir::Etc::sourcelist`` and ``Dir::State::Lists`` options), so the
machine's own apt configuration is never changed.  A tarball copied into
``<cache>/download/`` beforehand is used as is and nothing is fetched.

Cache: ``$COEXTRA_CACHE/cpython-3.13`` or ``~/.cache/coextra/cpython-3.13``,
outside the checkout so every clone on the machine shares the builds.  A
build that fails leaves no stamp and no install tree, so nothing half-built
is ever taken for a cached build; concurrent invocations for the same
variant wait for each other (a lock file per variant).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = "3.13"
DEBIAN_VERSION = "3.13.15-1"
TARBALL = "python3.13_3.13.15.orig.tar.xz"
TOPDIR = "Python-3.13.15"
SUITE = "sid"
ARCHIVE = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: Options every variant passes to ./configure (part of the build key).
COMMON_OPTIONS = ("--with-ensurepip=no",)
FT = ("--disable-gil",)
TSAN = ("--disable-gil", "--with-thread-sanitizer")
#: variant -> (apply the patch series?, extra configure options)
VARIANTS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "baseline": (False, ()),
    "baseline-ft": (False, FT),
    "baseline-ft-tsan": (False, TSAN),
    "patched": (True, ()),
    "patched-ft": (True, FT),
    "patched-ft-tsan": (True, TSAN),
}
#: Bump when the procedure changes in a way that needs a rebuild.
PROCEDURE_VERSION = "1"


class BuildError(Exception):
    """A build step failed; the message is the one line the user sees."""


def log(msg: str) -> None:
    """Report progress on stderr (stdout carries only the result)."""
    print(f"[build.py] {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """Return the cache directory for CPython 3.13 builds."""
    env = os.environ.get("COEXTRA_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "coextra"
    return base / f"cpython-{VERSION}"


def patch_series() -> list[Path]:
    """Return the numbered patches beside this script, in order."""
    return sorted(HERE.glob("[0-9][0-9][0-9][0-9]-*.patch"))


def python_name(variant: str) -> str:
    """Return the installed interpreter's file name for a variant."""
    return f"python{VERSION}t" if "ft" in variant else f"python{VERSION}"


def apt_options(download: Path) -> list[str]:
    """Return apt options that use a private source list and lists dir."""
    apt_dir = download / "apt"
    (apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    sources = apt_dir / "sources.list"
    sources.write_text(
        f"deb-src [signed-by={KEYRING}] {ARCHIVE} {SUITE} main\n"
    )
    return [
        f"-oDir::Etc::sourcelist={sources}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={apt_dir / 'lists'}",
        # sid's Release file can be past its Valid-Until date on mirrors.
        "-oAcquire::Check-Valid-Until=false",
    ]


def fetch_tarball(cache: Path) -> Path:
    """Return the source tarball, downloading it with apt when missing."""
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    tarball = download / TARBALL
    if tarball.is_file():
        return tarball
    if shutil.which("apt-get") is None:
        raise BuildError(
            f"fetch: apt-get is not installed; copy {TARBALL} (Debian's "
            f"python3.13 {DEBIAN_VERSION} source) into {download}"
        )
    options = apt_options(download)
    log(
        f"fetching python3.13={DEBIAN_VERSION} source from {SUITE} with a "
        "private apt source list (the system's apt sources are untouched)"
    )
    update = subprocess.run(
        ["apt-get", *options, "update", "-q"],
        check=False,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    if update.returncode != 0:
        raise BuildError(
            f"fetch: 'apt-get update' for {SUITE} sources failed; check the "
            f"network access to Debian's archive, or copy {TARBALL} into "
            f"{download}"
        )
    subprocess.run(
        [
            "apt-get",
            *options,
            "source",
            "--download-only",
            f"python3.13={DEBIAN_VERSION}",
        ],
        cwd=download,
        check=False,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    # The tarball is what tells success: apt may complain about the
    # Debian packaging files even when the upstream tree arrived.
    if not tarball.is_file():
        raise BuildError(
            f"fetch: the archive did not provide {TARBALL}; copy it into "
            f"{download} and retry"
        )
    return tarball


def build_key(variant: str, tarball: Path, patches: list[Path]) -> str:
    """Hash everything that determines the build's result."""
    _, options = VARIANTS[variant]
    h = hashlib.sha256()
    h.update(PROCEDURE_VERSION.encode())
    h.update(tarball.name.encode())
    h.update(str(tarball.stat().st_size).encode())
    for opt in (*COMMON_OPTIONS, *options):
        h.update(b"\0" + opt.encode())
    for patch in patches:
        h.update(b"\0" + patch.name.encode() + b"\0")
        h.update(patch.read_bytes())
    return h.hexdigest()


def extract(tarball: Path, dest: Path) -> Path:
    """Extract a clean source tree into ``dest``; return its top dir."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="tar")
    return dest / TOPDIR


def apply_patches(tree: Path, patches: list[Path]) -> None:
    """Apply the series in order; stop at the first that fails."""
    for patch in patches:
        log(f"applying {patch.name}")
        result = subprocess.run(
            [
                "patch",
                "-p1",
                "--batch",
                "--forward",
                "--quiet",
                "-i",
                str(patch),
            ],
            cwd=tree,
            check=False,
            stdout=sys.stderr,
            stderr=sys.stderr,
        )
        if result.returncode != 0:
            raise BuildError(
                f"patch: {patch.name} does not apply to {TOPDIR}; rebase "
                "the series on that tree (see the README beside build.py)"
            )


def sync_tree(staging: Path, src: Path) -> int:
    """Make ``src`` equal to ``staging``, touching only changed files.

    Unchanged files keep their modification time, so an incremental
    ``make`` rebuilds only what the new series changed.  Returns the
    number of files written or removed.
    """
    changed = 0
    wanted: set[Path] = set()
    for path in staging.rglob("*"):
        rel = path.relative_to(staging)
        wanted.add(rel)
        target = src / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        data = path.read_bytes()
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        os.utime(target)  # newer than its objects, so make rebuilds it
        changed += 1
    for path in sorted(src.rglob("*"), reverse=True):
        if path.relative_to(src) not in wanted:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            changed += 1
    return changed


def run_step(step: str, cmd: list[str], cwd: Path, fix: str) -> None:
    """Run one build step; a failure becomes a one-line BuildError."""
    log(f"$ {' '.join(cmd)}")
    result = subprocess.run(
        cmd, cwd=cwd, check=False, stdout=sys.stderr, stderr=sys.stderr
    )
    if result.returncode != 0:
        raise BuildError(
            f"{step}: '{' '.join(cmd[:2])}' exited {result.returncode} in "
            f"{cwd}; {fix}"
        )


@contextmanager
def variant_lock(vdir: Path) -> Iterator[None]:
    """Serialise builds of one variant across processes."""
    vdir.mkdir(parents=True, exist_ok=True)
    with open(vdir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_build(variant: str) -> Path | None:
    """Return the interpreter of an up-to-date cached build, else None.

    Nothing is fetched or built: ``tools/which_envs.py`` uses this to
    decide whether an environment is cheap enough to run by default.
    """
    cache = cache_root()
    tarball = cache / "download" / TARBALL
    if not tarball.is_file():
        return None
    patched, _ = VARIANTS[variant]
    patches = patch_series() if patched else []
    vdir = cache / variant
    stamp = vdir / "stamp"
    python = vdir / "install" / "bin" / python_name(variant)
    key = build_key(variant, tarball, patches)
    if stamp.is_file() and stamp.read_text().strip() == key:
        if python.is_file():
            return python
    return None


def build(variant: str, jobs: int, force: bool) -> Path:
    """Ensure the variant is built and installed; return the interpreter."""
    cache = cache_root()
    tarball = fetch_tarball(cache)
    patched, options = VARIANTS[variant]
    patches = patch_series() if patched else []
    if patched and not patches:
        raise BuildError(
            f"patch: no NNNN-*.patch files beside {Path(__file__).name}"
        )
    key = build_key(variant, tarball, patches)
    vdir = cache / variant
    src, bld, prefix = vdir / "src", vdir / "build", vdir / "install"
    stamp = vdir / "stamp"
    python = prefix / "bin" / python_name(variant)
    with variant_lock(vdir):
        if (
            not force
            and stamp.is_file()
            and stamp.read_text().strip() == key
            and python.is_file()
        ):
            log(f"{variant}: up to date ({key[:12]})")
            return python
        started = time.monotonic()
        stamp.unlink(missing_ok=True)
        try:
            staging_root = vdir / "staging"
            staging = extract(tarball, staging_root)
            apply_patches(staging, patches)
            if src.is_dir():
                changed = sync_tree(staging, src)
                log(f"{variant}: {changed} source files changed")
            else:
                staging.rename(src)
            shutil.rmtree(staging_root)
            bld.mkdir(parents=True, exist_ok=True)
            configured = bld / "configured"
            all_options = (*COMMON_OPTIONS, *options)
            wanted = "\n".join((str(prefix), *all_options))
            if not configured.is_file() or configured.read_text() != wanted:
                run_step(
                    "configure",
                    [
                        str(src / "configure"),
                        f"--prefix={prefix}",
                        *all_options,
                    ],
                    bld,
                    "install the compiler and headers it names "
                    "(apt-get install build-essential)",
                )
                configured.write_text(wanted)
            run_step(
                "make",
                ["make", f"-j{jobs}"],
                bld,
                "read the compiler error above; a patch error needs a "
                "fixed series",
            )
            if prefix.exists():
                shutil.rmtree(prefix)
            run_step(
                "install",
                ["make", "install"],
                bld,
                "check free disk space in the cache",
            )
        except BaseException:
            # No stamp and no install tree: nothing half-built looks cached.
            shutil.rmtree(prefix, ignore_errors=True)
            shutil.rmtree(vdir / "staging", ignore_errors=True)
            raise
        stamp.write_text(key + "\n")
        log(f"{variant}: built in {time.monotonic() - started:.0f} s")
        return python


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="patched",
        help="which build (default: %(default)s)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 2,
        help="parallel make jobs (default: the number of CPUs)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when the build key is unchanged",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only tell whether an up-to-date build is cached: print its "
        "interpreter and exit 0, or exit 1 (nothing is fetched or built)",
    )
    parser.add_argument(
        "--list", action="store_true", help="print the variants and exit"
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, (patched, options) in VARIANTS.items():
            print(name, "patched" if patched else "unpatched", *options)
        return 0
    if args.check:
        cached = cached_build(args.variant)
        if cached is None:
            log(f"{args.variant}: no up-to-date build in {cache_root()}")
            return 1
        print(cached)
        return 0
    try:
        python = build(args.variant, args.jobs, args.force)
    except BuildError as exc:
        print(f"build.py: {args.variant}: {exc}", file=sys.stderr)
        return 1
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
