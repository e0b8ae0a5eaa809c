r"""Build the reference as a plain shared library exporting the C ABI.

The suite loads it with ``--coextra-impl=PATH`` through
``coextra_conformance.cabi.load_library``; with ``--sanitize`` it is the
library of the ASan/UBSan run::

    python reference_impl/build_shared.py --sanitize address,undefined \\
        -o build/libcoextra_ref_asan.so
"""

from __future__ import annotations

import argparse
import os
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

# Flags, sources and the ABI header's folder come from the cffi builder,
# so that both builds compile the same thing the same way.
_BUILDER: dict[str, Any] = runpy.run_path(
    str(Path(__file__).with_name("coextra_build.py"))
)
CFLAGS: list[str] = _BUILDER["CFLAGS"]
SRC: Path = _BUILDER["SRC"]
abi_include_dir = _BUILDER["abi_include_dir"]


def compile_command(output: Path, sanitize: str | None, cc: str) -> list[str]:
    """Return the compiler command line that builds ``output``."""
    cmd = [cc, *CFLAGS, "-shared", "-fPIC", "-pthread", "-g"]
    if sanitize:
        # Stop at the first report of either sanitizer: a recovered UBSan
        # diagnostic would let the suite pass over a real bug.
        cmd += [
            "-O1",
            f"-fsanitize={sanitize}",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ]
    else:
        cmd += ["-O2"]
    cmd += ["-I", str(SRC), "-I", str(abi_include_dir())]
    cmd += [str(p) for p in sorted(SRC.glob("*.c"))]
    cmd += ["-o", str(output)]
    return cmd


def main(argv: list[str] | None = None) -> int:
    """Build the library; return the compiler's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("build/libcoextra_ref.so"),
        help="Path of the library. Default: %(default)s",
    )
    parser.add_argument(
        "--sanitize",
        default=None,
        help="Comma-separated -fsanitize= list, such as address,undefined. "
        "Default: none",
    )
    parser.add_argument(
        "--cc",
        default=os.environ.get("CC", "gcc"),
        help="C compiler. Default: $CC or gcc",
    )
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cmd = compile_command(args.output, args.sanitize, args.cc)
    print(shlex.join(cmd))
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
