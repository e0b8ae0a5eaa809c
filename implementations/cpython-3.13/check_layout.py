#!/usr/bin/env python3
"""Compare struct layouts of the patched and unpatched 3.13.15 builds.

Usage::

    python3 implementations/cpython-3.13/check_layout.py \
        --baseline PATH/python3.13 --patched PATH/python3.13 [--json OUT]

Reads the top-level fields of ``PyInterpreterState`` (``struct _is``),
``PyCodeObject``, ``_PyRuntimeState`` and ``PyThreadState`` from the two
interpreters' debug information with gdb's Python API, and reports, per
struct, the fields that moved, the fields that only one build has, and
the sizes.  The series promises that no field of the interpreter state,
the runtime state or the thread state moves (its interpreter-state
fields are appended), and that the code object loses exactly
``co_extra``.  Exit status 1 when a promise does not hold.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

#: struct -> an expression whose type is that struct, taken from
#: _PyRuntime (defined in Python/pylifecycle.c) and from a function of
#: Objects/codeobject.c, so gdb reads the layout those files were compiled
#: with, whichever other object files describe the same struct.
STRUCTS = {
    "interpreter_state": "_PyRuntime._main_interpreter",
    "code_object": "*PyCode_NewEmpty(0, 0, 0)",
    "runtime_state": "_PyRuntime",
    "thread_state": "_PyRuntime._main_interpreter._initial_thread.base",
}

GDB_SCRIPT = """
import json, gdb
out = {}
for key, expr in %r.items():
    if expr.startswith("*PyCode_NewEmpty"):
        t = gdb.parse_and_eval("PyCode_NewEmpty").type.target().target()
    else:
        t = gdb.parse_and_eval(expr).type
    t = t.strip_typedefs()
    out[key] = {"size": t.sizeof,
                "fields": {f.name: f.bitpos // 8 for f in t.fields()}}
print("LAYOUT" + json.dumps(out))
"""


def layout(python: Path) -> dict[str, dict[str, Any]]:
    """Return struct sizes and top-level field offsets from debug info."""
    proc = subprocess.run(
        [
            "gdb",
            "-batch",
            "-nx",
            "-ex",
            "python\n" + (GDB_SCRIPT % STRUCTS) + "\nend",
            str(python),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("LAYOUT"):
            return json.loads(line[len("LAYOUT") :])  # type: ignore[no-any-return]
    raise SystemExit(
        f"check_layout.py: gdb could not read the layout of {python} "
        f"(built without debug information?): {proc.stderr.strip()[:200]}"
    )


def compare(base: dict[str, Any], patched: dict[str, Any]) -> dict[str, Any]:
    """Return the moved, removed and added fields of one struct."""
    bf: dict[str, int] = base["fields"]
    pf: dict[str, int] = patched["fields"]
    return {
        "size": {"unpatched": base["size"], "patched": patched["size"]},
        "moved": {n: [bf[n], pf[n]] for n in bf if n in pf and bf[n] != pf[n]},
        "removed": sorted(n for n in bf if n not in pf),
        "added": {n: pf[n] for n in pf if n not in bf},
    }


def main(argv: list[str] | None = None) -> int:
    """Compare, print, check the promises."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--patched", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if shutil.which("gdb") is None:
        print(
            "check_layout.py: gdb is not installed (apt-get install gdb)",
            file=sys.stderr,
        )
        return 2
    for python in (args.baseline, args.patched):
        if not python.is_file():
            print(
                f"check_layout.py: {python} does not exist; build it "
                "with build.py first",
                file=sys.stderr,
            )
            return 2
    base, patched = layout(args.baseline), layout(args.patched)
    report: dict[str, Any] = {
        key: compare(base[key], patched[key]) for key in STRUCTS
    }
    problems = []
    for key in ("interpreter_state", "runtime_state", "thread_state"):
        if report[key]["moved"] or report[key]["removed"]:
            problems.append(f"{key}: fields moved or removed")
    code = report["code_object"]
    if code["removed"] != ["co_extra"] or code["added"]:
        problems.append("code_object: expected exactly co_extra removed")
    report["problems"] = problems
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
