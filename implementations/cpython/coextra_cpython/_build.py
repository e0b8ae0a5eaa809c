"""Find the target interpreter and compile the worker's C extension.

The extension is compiled with the system C compiler against the headers
of the interpreter under test and cached per interpreter and source hash,
so only the first run against a given interpreter pays for the compiler
(about half a second).
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

#: The interpreters this adapter supports without the PEP 8523 API.
SUPPORTED = ((3, 6), (3, 13))
SUPPORTED_TEXT = "CPython 3.6-3.13"

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

    @property
    def version_text(self) -> str:
        """Return the version as ``3.6.15``."""
        return ".".join(map(str, self.version))


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
    return "install a CPython 3.6-3.13, e.g. `pyenv install 3.6.15`"


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


def _run_probe(name: str) -> subprocess.CompletedProcess[str] | str:
    """Run the probe; return the process, or why it could not run."""
    if os.sep in name:
        if not os.access(name, os.X_OK):
            return "no such executable"
    elif shutil.which(name) is None:
        return "interpreter not found on PATH"
    try:
        proc = subprocess.run(
            [name, "-c", _PROBE],
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


def probe(name: str) -> Target:
    """Run the interpreter ``name`` once and describe it."""
    proc = _run_probe(name)
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
        f"providing the PEP 8523 API)"
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


def build(target: Target) -> Path:
    """Return a directory holding the extension built for ``target``."""
    source = worker_file("_coextra_cpython.c").read_bytes()
    compiler = _compiler()
    key = hashlib.sha256()
    for part in (
        source,
        repr(target).encode(),
        repr(compiler).encode(),
        repr(_CFLAGS).encode(),
    ):
        key.update(part)
        key.update(b"\0")
    out_dir = cache_dir() / (
        f"cpython-{target.version_text}-{key.hexdigest()[:16]}"
    )
    out = out_dir / f"_coextra_cpython{target.ext_suffix}"
    if out.is_file():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        c_file = Path(tmp) / "_coextra_cpython.c"
        c_file.write_bytes(source)
        tmp_out = Path(tmp) / out.name
        command = [
            *compiler,
            *_CFLAGS,
            *(f"-I{inc}" for inc in target.includes),
            str(c_file),
            "-o",
            str(tmp_out),
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
        # Atomic: a concurrent run (pytest-xdist) sees all or nothing.
        os.replace(tmp_out, out)
    return out_dir
