"""Find the target interpreter and compile the worker's C extension.

The extension is compiled with the system C compiler against the headers
of the interpreter under test and cached per interpreter and source hash,
so only the first run against a given interpreter pays for the compiler
(about half a second).

An interpreter may also live in another root file system (``COEXTRA_ROOT``,
such as the Debian ``sid`` root that ``sid_root.py`` builds for CPython 3.14
and 3.15, whose binaries need a newer C library than the host's).  Then
every command for the target runs under ``chroot ROOT``: the probe, the
root's own ``gcc`` against the root's headers, and the worker.  The files
the worker needs (``worker.py`` and the compiled extension) are installed
into the root, under ``/var/cache/coextra-cpython``, since a chrooted
process sees nothing else of the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

#: The interpreters this adapter supports without the PEP 9999 API.
SUPPORTED = ((3, 6), (3, 15))
SUPPORTED_TEXT = "CPython 3.6-3.15"

#: The environment variable naming a root file system to chroot into.
ROOT_VAR = "COEXTRA_ROOT"
#: Where, inside such a root, the worker's files are installed.
ROOT_CACHE = "var/cache/coextra-cpython"

#: Run by the target interpreter: what it is and where its headers are.
#: Plain enough for CPython 2.7, so that a wrong interpreter gets a clear
#: message instead of a syntax error.
_PROBE = r"""
import json, os, sys, sysconfig
impl = getattr(sys, "implementation", None)
includes = [sysconfig.get_paths()["include"]]
if sysconfig.is_python_build():
    # An uninstalled build tree: headers in the source tree, pyconfig.h
    # in the build directory.
    srcdir = sysconfig.get_config_var("srcdir") or ""
    includes = [os.path.join(srcdir, "Include"),
                os.path.dirname(sysconfig.get_config_h_filename())]
suffix = (sysconfig.get_config_var("EXT_SUFFIX")
          or sysconfig.get_config_var("SO"))
print(json.dumps({
    "implementation": impl.name if impl else "cpython",
    "version": list(sys.version_info[:3]),
    "executable": os.path.realpath(sys.executable),
    "includes": includes,
    "ext_suffix": suffix,
}))
"""

_CFLAGS = ("-shared", "-fPIC", "-O2", "-g", "-Wall", "-Wextra", "-Werror")


class AdapterLoadError(Exception):
    """The adapter cannot drive the requested interpreter (one line)."""


@dataclass(frozen=True)
class Target:
    """What the probe learned about the interpreter under test."""

    #: As given: a command name such as ``python3.6`` or a path.
    name: str
    implementation: str
    version: tuple[int, int, int]
    executable: str
    includes: tuple[str, ...]
    ext_suffix: str
    #: The root file system the interpreter runs in (host path), or None
    #: for an interpreter of the host.
    root: str | None = None

    @property
    def version_text(self) -> str:
        """Return the version as ``3.6.15``."""
        return ".".join(map(str, self.version))

    def launcher(self) -> list[str]:
        """Return the command prefix that runs a program of the target."""
        return launcher(self.root)

    def inside(self, path: Path) -> str:
        """Return ``path`` (a host path) as the target's processes see it."""
        return inside(self.root, path)


def launcher(root: str | None) -> list[str]:
    """Return ``chroot ROOT`` for a target in a root, else nothing."""
    return [] if root is None else ["chroot", root]


def inside(root: str | None, path: Path) -> str:
    """Return a host path under ``root`` as seen from inside it."""
    if root is None:
        return str(path)
    return "/" + str(path.resolve().relative_to(Path(root).resolve()))


def target_root() -> str | None:
    """Return the root named by COEXTRA_ROOT, checked; None if unset.

    Raises AdapterLoadError when it is not a usable root file system.
    """
    root = os.environ.get(ROOT_VAR)
    if not root:
        return None
    if not (Path(root) / "usr" / "bin").is_dir():
        raise AdapterLoadError(
            f"{ROOT_VAR}={root} is not a root file system (no usr/bin); "
            f"build the Debian sid root with "
            f"`python3 implementations/cpython/sid_root.py` (as root)"
        )
    if shutil.which("chroot") is None:
        raise AdapterLoadError(
            f"{ROOT_VAR} is set but chroot is not on PATH; install coreutils"
        )
    if os.geteuid() != 0:
        raise AdapterLoadError(
            f"{ROOT_VAR}={root}: running an interpreter inside a root file "
            f"system needs root privileges (chroot); run the suite as root"
        )
    return str(Path(root).resolve())


#: The extension's C files: the module first, then the parts it includes.
C_SOURCES = (
    "_coextra_cpython.c",
    "cx_common.h",
    "cx_alloc.h",
    "cx_interp.h",
    "cx_record.h",
    "cx_hammer.h",
)


def worker_file(name: str) -> Path:
    """Return the path of a file shipped in ``coextra_cpython.worker``."""
    path = resources.files("coextra_cpython.worker").joinpath(name)
    return Path(str(path))


#: Final releases of branches that get no more releases, for the hint.
_FINAL = {"3.6": "3.6.15", "3.7": "3.7.17"}


def _install_hint(name: str) -> str:
    minor = name.rsplit("python", 1)[-1]
    if minor.startswith("3.") and minor[2:].isdigit():
        # pyenv resolves a bare minor version to its latest release.
        version = _FINAL.get(minor, minor)
        return (
            f"install it, e.g. `pyenv install {version}`, and put it on "
            f"PATH (pyenv: `pyenv global` or PYENV_VERSION)"
        )
    return "install a CPython 3.6-3.15, e.g. `pyenv install 3.6.15`"


def pyenv_interpreter(name: str) -> str | None:
    """Return the newest pyenv-installed ``python3.X`` for ``name``.

    pyenv's shims only run versions selected with ``pyenv global`` or
    ``PYENV_VERSION``; an installed but unselected 3.6 is still usable
    through its own path.
    """
    match = re.fullmatch(r"python(3\.\d+)", name)
    if match is None:
        return None
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = []
    for exe in root.glob(f"versions/{match[1]}.*/bin/{name}"):
        version = exe.parent.parent.name
        if re.fullmatch(r"\d+\.\d+\.\d+", version) and os.access(exe, os.X_OK):
            found.append((tuple(map(int, version.split("."))), str(exe)))
    return max(found)[1] if found else None


def _run_probe(
    name: str, root: str | None = None
) -> subprocess.CompletedProcess[str] | str:
    """Run the probe; return the process, or why it could not run."""
    if root is not None:
        found = [
            Path(root) / d / name
            for d in ("usr/local/bin", "usr/bin", "bin")
            if os.sep not in name
        ] or [Path(root) / name.lstrip("/")]
        if not any(os.access(f, os.X_OK) for f in found):
            return f"not found in the root file system {root}"
    elif os.sep in name:
        if not os.access(name, os.X_OK):
            return "no such executable"
    elif shutil.which(name) is None:
        return "interpreter not found on PATH"
    try:
        proc = subprocess.run(
            [*launcher(root), name, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError as exc:
        return f"cannot run it ({exc.strerror})"
    if proc.returncode != 0:
        # The first line names a missing pyenv version; a traceback ends
        # with the exception.
        lines = proc.stderr.strip().splitlines() or ["no output"]
        line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
        return f"cannot run it ({line.strip()})"
    return proc


_PROBE_KEYS = frozenset(
    {"implementation", "version", "executable", "includes", "ext_suffix"}
)


def _probe_answer(stdout: str) -> dict[str, Any] | None:
    """Parse the probe's JSON line; None when the program printed none."""
    lines = stdout.strip().splitlines()
    try:
        info = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    if not isinstance(info, dict) or not _PROBE_KEYS <= info.keys():
        return None
    return info


def probe(name: str, root: str | None = None) -> Target:
    """Run the interpreter ``name`` (inside ``root``) once; describe it."""
    proc = _run_probe(name, root)
    if isinstance(proc, str) and root is not None:
        raise AdapterLoadError(
            f"COEXTRA_PYTHON={name} ({ROOT_VAR}={root}): {proc}; build the "
            f"root with `python3 implementations/cpython/sid_root.py`"
        )
    if isinstance(proc, str):
        fallback = pyenv_interpreter(name)
        if fallback is not None:
            proc = _run_probe(fallback)
        if isinstance(proc, str):
            hint = _install_hint(Path(name).name)
            raise AdapterLoadError(f"COEXTRA_PYTHON={name}: {proc}; {hint}")
    info = _probe_answer(proc.stdout)
    if info is None:
        raise AdapterLoadError(
            f"COEXTRA_PYTHON={name} did not answer like a Python "
            f"interpreter; point it at {SUPPORTED_TEXT}"
        )
    target = Target(
        name=name,
        implementation=info["implementation"],
        version=tuple(info["version"]),
        executable=info["executable"],
        includes=tuple(info["includes"]),
        ext_suffix=info["ext_suffix"],
        root=root,
    )
    if target.implementation != "cpython":
        raise AdapterLoadError(
            f"COEXTRA_PYTHON={name} is {target.implementation} "
            f"{target.version_text}, not CPython; the cpython adapter "
            f"supports {SUPPORTED_TEXT}"
        )
    if target.version[:2] < SUPPORTED[0]:
        raise AdapterLoadError(out_of_range(target))
    return target


def out_of_range(target: Target) -> str:
    """Return the message for an interpreter outside the supported range."""
    return (
        f"COEXTRA_PYTHON={target.name} is CPython {target.version_text}; "
        f"the cpython adapter supports {SUPPORTED_TEXT} (or a build "
        f"providing the PEP 9999 API)"
    )


def cache_dir() -> Path:
    """Return the directory holding compiled extensions."""
    env = os.environ.get("COEXTRA_CACHE")
    if env:
        return Path(env) / "cpython"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "coextra" / "cpython"


def _compiler() -> list[str]:
    env = os.environ.get("CC")
    if env:
        return shlex.split(env)
    for candidate in ("cc", "gcc", "clang"):
        found = shutil.which(candidate)
        if found:
            return [found]
    raise AdapterLoadError(
        "no C compiler found (cc, gcc or clang, or set CC): the cpython "
        "adapter compiles a small extension per interpreter; install one, "
        "e.g. `apt-get install gcc`"
    )


def _root_compiler(root: str) -> list[str]:
    """Return the command running the root's own gcc."""
    if not os.access(Path(root) / "usr" / "bin" / "gcc", os.X_OK):
        raise AdapterLoadError(
            f"{ROOT_VAR}={root} has no gcc: the cpython adapter compiles its "
            f"extension with the root's compiler; rebuild the root with "
            f"`python3 implementations/cpython/sid_root.py --force`"
        )
    return [*launcher(root), "gcc"]


def build(target: Target) -> Path:
    """Return a directory holding the extension built for ``target``.

    For a target inside a root file system the directory is inside that
    root and also holds a copy of ``worker.py``.
    """
    sources = {name: worker_file(name).read_bytes() for name in C_SOURCES}
    in_root = target.root is not None
    if target.root is not None:
        compiler = _root_compiler(target.root)
        worker_source = worker_file("worker.py").read_bytes()
        base = Path(target.root) / ROOT_CACHE
    else:
        compiler = _compiler()
        worker_source = b""
        base = cache_dir()
    key = hashlib.sha256()
    for part in (
        *sources.values(),
        worker_source,
        repr(target).encode(),
        repr(compiler).encode(),
        repr(_CFLAGS).encode(),
    ):
        key.update(part)
        key.update(b"\0")
    out_dir = base / f"cpython-{target.version_text}-{key.hexdigest()[:16]}"
    out = out_dir / f"_coextra_cpython{target.ext_suffix}"
    if out.is_file() and (not in_root or (out_dir / "worker.py").is_file()):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        for name, text in sources.items():
            (Path(tmp) / name).write_bytes(text)
        c_file = Path(tmp) / C_SOURCES[0]
        tmp_out = Path(tmp) / out.name
        command = [
            *compiler,
            *_CFLAGS,
            *(f"-I{inc}" for inc in target.includes),
            target.inside(c_file),
            "-o",
            target.inside(tmp_out),
        ]
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, check=False
            )
        except OSError as exc:
            raise AdapterLoadError(
                f"cannot run the C compiler {compiler[0]!r} "
                f"({exc.strerror}): install one or fix CC"
            ) from None
        if proc.returncode != 0:
            errors = (
                [line for line in proc.stderr.splitlines() if "error" in line]
                or proc.stderr.splitlines()
                or ["no output"]
            )
            raise AdapterLoadError(
                f"compiling the cpython adapter's extension for "
                f"{target.name} ({target.version_text}) failed: "
                f"{errors[0].strip()}"
            )
        if in_root:
            tmp_worker = Path(tmp) / "worker.py"
            tmp_worker.write_bytes(worker_source)
            os.replace(tmp_worker, out_dir / "worker.py")
        # Atomic: a concurrent run (pytest-xdist) sees all or nothing.
        os.replace(tmp_out, out)
    return out_dir


def worker_command(target: Target, build_dir: Path) -> list[str]:
    """Return the command line that starts a worker for ``target``."""
    script = (
        build_dir / "worker.py"
        if target.root is not None
        else worker_file("worker.py")
    )
    return [
        *target.launcher(),
        target.executable,
        "-I",  # ignore PYTHON* variables and the user's site-packages
        "-S",  # no site: faster start-up, nothing from site-packages
        "-X",
        "faulthandler",  # a crash leaves a traceback on stderr
        target.inside(script),
        target.inside(build_dir),
    ]
