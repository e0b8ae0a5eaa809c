#!/usr/bin/env python3
"""Fetch, patch and build CPython 3.11.2 with the PEP 8523 patch series.

Usage::

    python3 implementations/cpython-3.11/build.py [--variant patched]
    python3 implementations/cpython-3.11/build.py --variant baseline

The last line printed on stdout is the path of the installed interpreter;
everything else goes to stderr.  The script is idempotent:

* the source tarball (Debian's ``python3.11_3.11.2.orig.tar.gz``, the
  unmodified upstream tree) is fetched once with ``apt-get source`` into
  the cache;
* the patch series (``0001-*.patch`` ... beside this script) is applied to
  a freshly extracted copy whenever its hash changes, and only the files
  whose content differs are written into the build's source tree, so
  ``make`` recompiles what the change touches and nothing more;
* a build whose key (tarball, patches, configure options) is unchanged is
  kept and its interpreter path printed at once.

The cache is ``$COEXTRA_CACHE/cpython-3.11`` when ``COEXTRA_CACHE`` is set,
else ``~/.cache/coextra/cpython-3.11`` (outside the checkout, so that a
fresh clone of the repository finds a build made from another one).  Each
variant has its own ``src/`` (patched sources), ``build/`` (out-of-tree
build) and ``install/`` (``make install`` prefix, so that ``sysconfig``
reports the right include paths to extensions compiled against it).  The
``baseline`` variant applies no patch: it is the unpatched build of the
same source that the measurements compare against.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARBALL = "python3.11_3.11.2.orig.tar.gz"
TOPDIR = "Python-3.11.2"
#: Options passed to ./configure; part of the build key.
CONFIGURE_OPTIONS = ("--with-ensurepip=no",)
#: Bump when the build procedure itself changes in a way that needs a
#: rebuild (it is part of the build key).
PROCEDURE_VERSION = "1"


def log(msg: str) -> None:
    """Report progress on stderr (stdout carries only the result)."""
    print(f"[build.py] {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """Return the cache directory for CPython 3.11 builds."""
    env = os.environ.get("COEXTRA_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "coextra"
    return base / "cpython-3.11"


def patch_series() -> list[Path]:
    """Return the numbered patches beside this script, in order."""
    return sorted(HERE.glob("[0-9][0-9][0-9][0-9]-*.patch"))


#: The source entry this script adds when apt has none (as root only).
DEB_SRC_FILE = Path("/etc/apt/sources.list.d/coextra-deb-src.sources")
DEB_SRC_ENTRY = """\
# Added by coextra's implementations/cpython-3.11/build.py so that
# `apt-get source python3.11` can fetch the upstream 3.11.2 tarball.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def has_deb_src() -> bool:
    """Tell whether any apt source entry offers source packages."""
    paths = [Path("/etc/apt/sources.list")]
    paths += sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split()
            if words[:1] == ["deb-src"] or (
                words[:1] == ["Types:"] and "deb-src" in words
            ):
                return True
    return False


def ensure_deb_src() -> None:
    """Give apt a deb-src entry for bookworm when it has none.

    The machine image ships binary entries only.  As root the entry is
    added (and apt's lists updated); otherwise the caller's error
    message says what to add.
    """
    if has_deb_src() or os.geteuid() != 0:
        return
    log(f"adding a deb-src entry for bookworm: {DEB_SRC_FILE}")
    DEB_SRC_FILE.write_text(DEB_SRC_ENTRY)
    subprocess.run(["apt-get", "update", "-q"], check=False, stdout=sys.stderr)


def fetch_tarball(cache: Path) -> Path:
    """Return the source tarball, downloading it with apt when missing."""
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    tarball = download / TARBALL
    if tarball.is_file():
        return tarball
    ensure_deb_src()
    log("fetching the source with apt-get source")
    # apt-get exits non-zero when Debian's own patch archive is missing
    # on the mirror even though the upstream tarball arrived, so the file
    # is what tells success, not the exit status.
    subprocess.run(
        ["apt-get", "source", "--download-only", "python3.11"],
        cwd=download,
        check=False,
        stdout=sys.stderr,
    )
    if not tarball.is_file():
        sys.exit(
            "build.py: could not fetch "
            f"{TARBALL}.  Add a 'Types: deb deb-src' entry for bookworm "
            "to /etc/apt/sources.list.d/, run 'apt-get update', and retry;"
            f" or place the tarball in {download}."
        )
    return tarball


def build_key(tarball: Path, patches: list[Path]) -> str:
    """Hash everything that determines the build's result."""
    h = hashlib.sha256()
    h.update(PROCEDURE_VERSION.encode())
    h.update(tarball.name.encode())
    h.update(str(tarball.stat().st_size).encode())
    for opt in CONFIGURE_OPTIONS:
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
        # Extraction filters exist from 3.10.12/3.11.4 on; the tarball is
        # Debian's pristine upstream one, trusted either way.
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(dest, filter="tar")
        else:  # pragma: no cover - older Pythons
            tar.extractall(dest)
    return dest / TOPDIR


def apply_patches(tree: Path, patches: list[Path]) -> None:
    """Apply the series in order; stop at the first that fails."""
    for patch in patches:
        log(f"applying {patch.name}")
        subprocess.run(
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
            check=True,
            stdout=sys.stderr,
        )


def sync_tree(staging: Path, src: Path) -> int:
    """Make ``src`` equal to ``staging``, touching only changed files.

    Unchanged files keep their modification time, so that an incremental
    ``make`` rebuilds only what the new patch series changed.  Returns the
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
        # A fresh mtime, so make sees the file as newer than its objects.
        os.utime(target)
        changed += 1
    for path in sorted(src.rglob("*"), reverse=True):
        if path.relative_to(src) not in wanted:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            changed += 1
    return changed


def run(cmd: list[str], cwd: Path) -> None:
    """Run a build step, logging the command."""
    log(f"$ {' '.join(cmd)}")
    subprocess.run(cmd, cwd=cwd, check=True, stdout=sys.stderr)


def cached_build(variant: str) -> Path | None:
    """Return the interpreter of an up-to-date cached build, else None.

    Nothing is fetched or built: this is how ``tools/which_envs.py``
    decides whether ``tox -e patched`` is cheap enough to run by default.
    """
    cache = cache_root()
    tarball = cache / "download" / TARBALL
    if not tarball.is_file():
        return None
    patches = patch_series() if variant == "patched" else []
    vdir = cache / variant
    stamp = vdir / "stamp"
    python = vdir / "install" / "bin" / "python3.11"
    key = build_key(tarball, patches)
    if stamp.is_file() and stamp.read_text().strip() == key:
        if python.is_file():
            return python
    return None


def build(variant: str, jobs: int, force: bool) -> Path:
    """Ensure the variant is built and installed; return the interpreter."""
    cache = cache_root()
    tarball = fetch_tarball(cache)
    patches = patch_series() if variant == "patched" else []
    key = build_key(tarball, patches)
    vdir = cache / variant
    src, bld, prefix = vdir / "src", vdir / "build", vdir / "install"
    stamp = vdir / "stamp"
    python = prefix / "bin" / "python3.11"
    if (
        not force
        and stamp.is_file()
        and stamp.read_text().strip() == key
        and python.is_file()
    ):
        log(f"{variant}: up to date ({key[:12]})")
        return python

    started = time.monotonic()
    staging_root = vdir / "staging"
    staging = extract(tarball, staging_root)
    apply_patches(staging, patches)
    if src.is_dir():
        changed = sync_tree(staging, src)
        log(f"{variant}: {changed} source files changed")
        shutil.rmtree(staging_root)
    else:
        vdir.mkdir(parents=True, exist_ok=True)
        staging.rename(src)
        shutil.rmtree(staging_root)
    stamp.unlink(missing_ok=True)

    bld.mkdir(parents=True, exist_ok=True)
    configured = bld / "configured"
    options = "\n".join((str(prefix), *CONFIGURE_OPTIONS))
    if not configured.is_file() or configured.read_text() != options:
        run(
            [str(src / "configure"), f"--prefix={prefix}", *CONFIGURE_OPTIONS],
            cwd=bld,
        )
        configured.write_text(options)
    run(["make", f"-j{jobs}"], cwd=bld)
    run(["make", "install"], cwd=bld)
    stamp.write_text(key + "\n")
    log(f"{variant}: built in {time.monotonic() - started:.0f} s")
    return python


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variant",
        choices=("patched", "baseline"),
        default="patched",
        help="patched (default): apply the series; baseline: no patch",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 2,
        help="parallel make jobs (default: number of CPUs)",
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
    args = parser.parse_args(argv)
    if args.check:
        cached = cached_build(args.variant)
        if cached is None:
            log(f"{args.variant}: no up-to-date build in {cache_root()}")
            return 1
        print(cached)
        return 0
    python = build(args.variant, args.jobs, args.force)
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
