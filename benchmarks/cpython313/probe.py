"""Memory probes, run inside one CPython 3.13.15 build by the harness.

``lfl run probe.py memory`` and ``lfl run probe.py census CONSUMERS
FILE...`` print one JSON object.  The ``_lfl`` module is the harness's
(harness.c): it requests indices and stores values through the build's
exported functions, so the figures are what the build itself does.

* memory: ``sys.getsizeof`` of a small function's code object created
  after 0, 1 and 4 consumers requested an index, before and after each
  consumer stored a value in it.  On the patched build the slots are
  inline and sized when the code object is created; on the unpatched
  build the first store allocates the extra block.
* census: compile every file given, visit every code object (by
  identity: code objects compare equal by value) and add up
  ``sys.getsizeof``; with one consumer, its index is requested before
  compiling and a value is stored in every code object.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
import warnings
from typing import Any

# Built into the harness (harness.c), so importable only inside it.
_lfl = importlib.import_module("_lfl")

SOURCE = """\
def f(items, key=None):
    total = 0
    for item in items:
        if key is not None:
            item = key(item)
        total += item
    return total
"""


def function_code(tag: object) -> types.CodeType:
    """Return a fresh code object of a small function."""
    module = compile(SOURCE, f"<memory {tag}>", "exec")
    return next(c for c in module.co_consts if isinstance(c, types.CodeType))


def memory() -> dict[str, Any]:
    """Rows for 0, 1 and 4 consumers."""
    indices: list[int] = []
    rows = []
    for consumers in (0, 1, 4):
        while len(indices) < consumers:
            indices.append(_lfl.request_index())
        code = function_code(consumers)
        before = sys.getsizeof(code)
        for index in indices:
            _lfl.set_extra(code, index, 1)
        rows.append(
            {
                "consumers": consumers,
                "sizeof_created": before,
                "sizeof_stored": sys.getsizeof(code),
                "inline": _lfl.has_inline(code),
            }
        )
    return {"rows": rows}


def walk(top: types.CodeType) -> list[types.CodeType]:
    """Every code object reachable from top, each once."""
    seen = {}
    stack = [top]
    while stack:
        code = stack.pop()
        if id(code) in seen:
            continue
        seen[id(code)] = code
        stack.extend(
            c for c in code.co_consts if isinstance(c, types.CodeType)
        )
    return list(seen.values())


def census(consumers: int, paths: list[str]) -> dict[str, Any]:
    """Code objects and their bytes when compiling the files."""
    index = _lfl.request_index() if consumers else None
    codes = 0
    total = 0
    failed = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                source = f.read()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                top = compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            failed += 1  # deliberately broken test inputs of the stdlib
            continue
        for code in walk(top):
            if index is not None:
                _lfl.set_extra(code, index, 1)
            codes += 1
            total += sys.getsizeof(code)
    return {
        "consumers": consumers,
        "files": len(paths),
        "failed": failed,
        "code_objects": codes,
        "sizeof_total": total,
        "table_bytes": _lfl.table_bytes(codes),
    }


def main(argv: list[str]) -> None:
    """Dispatch on the first argument."""
    if argv[1:2] == ["memory"]:
        result = memory()
    elif argv[1:2] == ["census"] and len(argv) >= 3:
        result = census(int(argv[2]), argv[3:])
    else:
        sys.exit("usage: probe.py memory | census CONSUMERS FILE...")
    result["patched"] = bool(_lfl.patched)
    result["free_threaded"] = bool(_lfl.free_threaded)
    print(json.dumps(result))


main(sys.argv)
