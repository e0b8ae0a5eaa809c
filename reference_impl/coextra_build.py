"""cffi builder of the reference implementation (API mode, out of line).

Run ``python coextra_build.py`` to build ``coextra_reference/_coextra``
in place, or let ``pip install ./reference_impl`` build it through
``setup.py`` (``cffi_modules``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"

#: Flags the C sources must build cleanly with (PEP 7 plus C11 atomics).
CFLAGS = ["-Wall", "-Wextra", "-Werror", "-std=c11"]


def abi_include_dir() -> Path:
    """Return the folder holding the suite's ``coextra_abi.h``.

    The repository checkout comes first; an installed suite package is
    the fallback for builds outside the repository.
    """
    in_repo = HERE.parent / "conformance" / "abi"
    if (in_repo / "coextra_abi.h").is_file():
        return in_repo
    spec = importlib.util.find_spec("coextra_conformance")
    if spec is not None and spec.origin is not None:
        installed = Path(spec.origin).parent / "abi"
        if (installed / "coextra_abi.h").is_file():
            return installed
    raise SystemExit(
        "coextra_abi.h not found: build from the repository checkout or "
        "install coextra-conformance first"
    )


def c_sources() -> list[str]:
    """Return the C sources, relative to this folder.

    setuptools wants relative source paths, and both ways of building
    compile from this folder: pip runs setup.py here, and ``compile``
    below changes to ``tmpdir``.
    """
    return [p.relative_to(HERE).as_posix() for p in sorted(SRC.glob("*.c"))]


ffibuilder = FFI()
ffibuilder.cdef((HERE / "coextra.cdef.h").read_text(encoding="utf-8"))
ffibuilder.set_source(
    "coextra_reference._coextra",
    '#include "coextra.h"\n#include "coextra_abi.h"\n',
    sources=c_sources(),
    include_dirs=[str(SRC), str(abi_include_dir())],
    extra_compile_args=CFLAGS,
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE), verbose=True)
