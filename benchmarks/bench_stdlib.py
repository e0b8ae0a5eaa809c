"""Count the code objects that compiling the standard library creates."""

from __future__ import annotations

import os
import types
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

#: Directories of the stdlib tree that are not the standard library.
_SKIP_DIRS = frozenset({"site-packages", "__pycache__"})


def stdlib_files(stdlib: str) -> list[str]:
    """Every ``.py`` file of the stdlib tree, sorted, tests included."""
    found = []
    for folder, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        found += [
            os.path.join(folder, name)
            for name in sorted(files)
            if name.endswith(".py")
        ]
    return found


def typical_sample(stdlib: str, count: int) -> list[str]:
    """``count`` top-level stdlib modules, evenly spaced by name.

    A fixed, reproducible sample of ordinary modules (no packages, no
    tests, no private modules), standing for "a typical module".
    """
    names = sorted(
        name
        for name in os.listdir(stdlib)
        if name.endswith(".py") and not name.startswith("_")
    )
    step = max(1, len(names) // count)
    return [os.path.join(stdlib, name) for name in names[::step][:count]]


def count_code_objects(path: str) -> int | None:
    """Code objects one compile() of the file creates; None if invalid.

    Nested code objects are reached through ``co_consts`` and counted by
    identity, never by value: code objects compare equal by value.
    """
    try:
        with open(path, "rb") as f:
            source = f.read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top = compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    seen: set[int] = set()
    stack = [top]
    while stack:
        code = stack.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        stack += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return len(seen)


@dataclass(frozen=True)
class Census:
    """The result of compiling a set of files."""

    files: int
    failed: int
    code_objects: int
    files_with_code: list[str]


def census(paths: list[str], workers: int) -> Census:
    """Compile every file (in ``workers`` processes) and count."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        counts = list(pool.map(count_code_objects, paths, chunksize=16))
    good = [p for p, n in zip(paths, counts, strict=True) if n is not None]
    return Census(
        files=len(paths),
        failed=len(paths) - len(good),
        code_objects=sum(n for n in counts if n is not None),
        files_with_code=good,
    )
