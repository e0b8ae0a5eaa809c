"""Find CPython interpreters and build the C harness against them.

The harness (``benchmarks/harness/*.c``) embeds one CPython, for the
stock API and compile(), and links the reference implementation's C
sources directly: each file of ``reference_impl/src`` is compiled to its
own object file and linked without link-time optimisation, so the
harness calls it exactly as a C consumer does, and only the header's
static inline fast path is inlined.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HARNESS = HERE / "harness"
REFERENCE_SRC = ROOT / "reference_impl" / "src"
#: The suite's C ABI header, which the reference's table.c includes.
ABI_INCLUDE = ROOT / "conformance" / "abi"

#: Flags of every harness build; recorded in the results.
CFLAGS = (
    "-O2",
    "-g",
    "-std=gnu11",
    "-pthread",
    "-Wall",
    "-Wextra",
    "-Werror",
)

_INFO_SNIPPET = """\
import json, sys, sysconfig
print(json.dumps({
    "executable": sys.executable,
    "version": "%d.%d.%d" % sys.version_info[:3],
    "include": sysconfig.get_paths()["include"],
    "stdlib": sysconfig.get_paths()["stdlib"],
    "libdir": sysconfig.get_config_var("LIBDIR"),
    "ldversion": sysconfig.get_config_var("LDVERSION"),
}))
"""


@dataclass(frozen=True)
class PythonInfo:
    """Where one CPython keeps what the harness needs."""

    executable: str
    version: str
    include: str
    stdlib: str
    libdir: str
    ldversion: str

    @property
    def minor(self) -> int:
        """The minor version number (11 for 3.11.7)."""
        return int(self.version.split(".")[1])


def python_info(executable: str) -> PythonInfo | None:
    """Ask an interpreter for its paths; None if it does not run."""
    try:
        out = subprocess.run(
            [executable, "-c", _INFO_SNIPPET],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return PythonInfo(**json.loads(out))


def _pyenv_candidates(minor: int) -> list[str]:
    root = os.environ.get("PYENV_ROOT")
    if root is None and shutil.which("pyenv") is not None:
        try:
            root = subprocess.run(
                ["pyenv", "root"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = None
    if not root:
        return []
    pattern = os.path.join(
        root, "versions", f"3.{minor}.*", "bin", f"python3.{minor}"
    )
    return sorted(glob.glob(pattern), reverse=True)


def find_python(minor: int) -> PythonInfo | None:
    """Locate a working ``python3.<minor>``.

    ``python3.X`` on PATH comes first.  A pyenv shim for a version that is
    installed but not selected fails to run, so the pyenv versions
    directory is searched next.
    """
    candidates = []
    on_path = shutil.which(f"python3.{minor}")
    if on_path is not None:
        candidates.append(on_path)
    candidates += _pyenv_candidates(minor)
    for candidate in candidates:
        info = python_info(candidate)
        if info is not None and info.minor == minor:
            return info
    return None


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout}{proc.stderr}"
        )


def compiler_version() -> str:
    """First line of ``cc --version``."""
    out = subprocess.run(
        [_cc(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()[0]


def _cc() -> str:
    return os.environ.get("CC", "gcc")


def reference_sources() -> list[Path]:
    """List the reference implementation's C files (empty if missing)."""
    return sorted(REFERENCE_SRC.glob("*.c"))


def build_harness(python: PythonInfo, outdir: Path) -> Path:
    """Compile and link the harness against ``python``; return its path."""
    sources = reference_sources()
    if not sources:
        raise RuntimeError(
            f"no C sources in {REFERENCE_SRC.relative_to(ROOT)}: the "
            "reference implementation is needed"
        )
    outdir.mkdir(parents=True, exist_ok=True)
    sources += sorted(HARNESS.glob("*.c"))
    includes = [
        f"-I{HARNESS}",
        f"-I{REFERENCE_SRC}",
        f"-I{ABI_INCLUDE}",
        f"-I{python.include}",
    ]
    objects = []
    for source in sources:
        obj = outdir / f"{source.parent.name}-{source.stem}.o"
        _run([_cc(), *CFLAGS, *includes, "-c", str(source), "-o", str(obj)])
        objects.append(str(obj))
    binary = outdir / f"coextra-bench-3.{python.minor}"
    _run(
        [
            _cc(),
            "-pthread",
            *objects,
            "-o",
            str(binary),
            f"-L{python.libdir}",
            f"-Wl,-rpath,{python.libdir}",
            f"-lpython{python.ldversion}",
            "-ldl",
            "-lm",
        ]
    )
    return binary
