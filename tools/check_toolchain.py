"""Check that a tool the project builds with is present.

Usage: ``python tools/check_toolchain.py TOOL [TOOL ...]`` where TOOL is
``python`` (the interpreter running this script is recent enough), ``cc``,
``cargo``, ``valgrind`` or ``python3.X``.  For each missing tool, print one
line saying what is missing and how to get it, and exit 1.
"""

from __future__ import annotations

import shutil
import sys

HOW_TO_GET = {
    "cc": "install gcc: apt-get install gcc",
    "cargo": "install Rust: apt-get install cargo (or rustup)",
    "valgrind": "install valgrind: apt-get install valgrind",
}

MINIMUM_PYTHON = (3, 10)


def problem(tool: str) -> str | None:
    """Return a one-line problem for ``tool``, or None when it is usable."""
    if tool == "python":
        if sys.version_info >= MINIMUM_PYTHON:
            return None
        have = ".".join(map(str, sys.version_info[:3]))
        need = ".".join(map(str, MINIMUM_PYTHON))
        return (
            f"error: Python {have} runs this, the project needs {need}+: "
            f"run it with a newer python3 (make PYTHON=python3.11 ...)"
        )
    if shutil.which(tool) is not None:
        return None
    if tool.startswith("python3."):
        minor = tool.removeprefix("python3.")
        return (
            f"error: interpreter {tool} not found on PATH: install it, "
            f"e.g. `pyenv install 3.{minor}` and `pyenv global` it"
        )
    how = HOW_TO_GET.get(tool, f"install {tool}")
    return f"error: {tool} not found on PATH: {how}"


def main(argv: list[str]) -> int:
    """Report every missing tool; return the exit status."""
    problems = [p for p in map(problem, argv) if p is not None]
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
