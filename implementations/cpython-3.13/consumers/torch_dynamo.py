#!/usr/bin/env python3
"""Run PyTorch Dynamo, a real consumer of the extra storage, on a build.

Usage::

    python3 implementations/cpython-3.13/consumers/torch_dynamo.py \
        --variant patched [--json OUT]

Dynamo keeps one ``ExtraState`` per code object (its cache entries and
its "skip this code" decision) in the extra storage, through the exported
``PyUnstable_Eval_RequestCodeExtraIndex`` / ``PyUnstable_Code_GetExtra``
/ ``PyUnstable_Code_SetExtra`` of the interpreter it runs in, with a free
function that destroys the state.  The torch wheel from PyPI is built
against stock CPython 3.13 headers, so this checks the PEP's claim that an
extension using only that API keeps working on the patched build, and
records honestly what breaks because it also inlines stock internals.

The variant's interpreter and its unpatched twin each get a virtual
environment with the pinned torch wheel (cached under
``~/.cache/coextra/torch/VARIANT``; the first run downloads about 4 GB
from PyPI).  Two workloads run in each:

``storage``
    Dynamo's extra-state path alone, never running code Dynamo
    transformed: for a function created before torch requested its index
    (a late consumer: out-of-line storage on the patched build) and one
    created after (inline storage), mark the code "skip" (Dynamo stores a
    new ``ExtraState``), call the compiled function (Dynamo reads the
    state back and must not compile), reset the code (Dynamo frees the
    state and clears the slot), call again (Dynamo must compile, its
    backend fails on purpose, Dynamo stores "skip"), call once more (no
    compile).  The process then exits with states still attached, so the
    free function also runs at finalization.

``transformed``
    ``torch.compile(f, backend="eager")`` run normally: Dynamo executes
    the bytecode it generated through its own frame set-up, which the
    wheel compiled from stock headers.  Any difference from the unpatched
    build is recorded, not hidden.

Exit status 0 when the storage workload behaves identically on both
builds and the transformed workload works on the unpatched one; 1
otherwise; 2 when a build is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FOLDER = HERE.parent
UNPATCHED = {"patched": "baseline", "patched-ft": "baseline-ft"}

#: The wheel's version is pinned so results are comparable run to run.
TORCH_REQUIREMENT = "torch==2.13.0"

STORAGE_WORKLOAD = """\
import ctypes, json, sys

def created_before_torch(x):
    return x * 2 + 1

import torch
import torch._dynamo
from torch._C._dynamo.eval_frame import reset_code
from torch._dynamo.eval_frame import skip_code

# Compiled now: a def in this source would have been compiled with the
# rest of it, before torch requested its index.
namespace = {}
exec(compile("def created_after_torch(x):\\n    return x * 3 - 1\\n",
             "<after torch>", "exec"), namespace)
created_after_torch = namespace["created_after_torch"]

backend_calls = []

def failing_backend(graph_module, example_inputs):
    backend_calls.append(graph_module)
    raise RuntimeError("deliberate: never run transformed code here")

torch._dynamo.config.suppress_errors = True

def inline_state(code):
    # Only the patched build exports this; None elsewhere.
    api = ctypes.pythonapi
    if not hasattr(api, "PyUnstable_Code_HasInlineExtra"):
        return None
    func = api.PyUnstable_Code_HasInlineExtra
    func.argtypes = [ctypes.py_object]
    func.restype = ctypes.c_int
    return bool(func(code))

def exercise(func, expected):
    compiled = torch.compile(func, backend=failing_backend)
    x = torch.ones(3)
    steps = {}
    before = len(backend_calls)
    skip_code(func.__code__)
    steps["skip_stored_then_read"] = {
        "correct": compiled(x).tolist() == expected,
        "compiles": len(backend_calls) - before,
    }
    reset_code(func.__code__)
    before = len(backend_calls)
    steps["after_reset"] = {
        "correct": compiled(x).tolist() == expected,
        "compiles": len(backend_calls) - before,
    }
    before = len(backend_calls)
    steps["skip_stored_by_fallback"] = {
        "correct": compiled(x).tolist() == expected,
        "compiles": len(backend_calls) - before,
    }
    return {"inline": inline_state(func.__code__), "steps": steps}

result = {
    "created_before_torch": exercise(created_before_torch, [3.0] * 3),
    "created_after_torch": exercise(created_after_torch, [2.0] * 3),
}
# Leave a state attached to a live code object: freed at finalization.
skip_code(created_after_torch.__code__)
print(json.dumps(result))
"""

#: What the storage workload must report, on every build.
STORAGE_EXPECTED_STEPS = {
    "skip_stored_then_read": {"correct": True, "compiles": 0},
    "after_reset": {"correct": True, "compiles": 1},
    "skip_stored_by_fallback": {"correct": True, "compiles": 0},
}

TRANSFORMED_WORKLOAD = """\
import json
import torch

def f(x):
    return x * 2 + 1

try:
    value = torch.compile(f, backend="eager")(torch.ones(2)).tolist()
    print(json.dumps({"value": value}))
except Exception as exc:
    print(json.dumps({"exception": f"{type(exc).__name__}: {exc}"}))
"""


def torch_python(variant: str, python: Path) -> Path:
    """Return a venv interpreter of ``python`` with torch installed."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    venv = cache / "coextra" / "torch" / variant
    venv_python = venv / "bin" / python.name
    marker = venv / "torch-installed"
    if marker.is_file() and marker.read_text().strip() == TORCH_REQUIREMENT:
        return venv_python
    print(
        f"torch_dynamo.py: installing {TORCH_REQUIREMENT} for {variant} "
        f"into {venv} (about 4 GB from PyPI, once)",
        file=sys.stderr,
    )
    subprocess.run(
        [str(python), "-m", "venv", "--clear", str(venv)], check=True
    )
    subprocess.run(
        [
            str(venv_python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            TORCH_REQUIREMENT,
            "numpy",
        ],
        check=True,
    )
    marker.write_text(TORCH_REQUIREMENT + "\n")
    return venv_python


def run_workload(python: Path, source: str) -> dict[str, Any]:
    """Run ``source`` under ``python``; its last stdout line is JSON."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(python), "-c", source],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    outcome: dict[str, Any] = {"returncode": proc.returncode}
    if proc.returncode < 0:
        outcome["signal"] = signal.Signals(-proc.returncode).name
    lines = proc.stdout.strip().splitlines()
    try:
        outcome["result"] = json.loads(lines[-1])
    except (IndexError, ValueError):
        outcome["stderr_tail"] = proc.stderr.strip()[-1500:]
    return outcome


def storage_ok(outcome: dict[str, Any]) -> bool:
    """Tell whether the storage workload exited cleanly as expected."""
    result = outcome.get("result")
    if outcome["returncode"] != 0 or not isinstance(result, dict):
        return False
    return all(
        result[name]["steps"] == STORAGE_EXPECTED_STEPS
        for name in ("created_before_torch", "created_after_torch")
    )


def main(argv: list[str] | None = None) -> int:
    """Run both workloads on the variant and on its unpatched twin."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="patched", choices=UNPATCHED)
    parser.add_argument("--json", type=Path, help="also write the result")
    parser.add_argument(
        "--torch-pythons",
        metavar="PATCHED,UNPATCHED",
        help="interpreters that already have torch installed, instead of "
        "the cached builds' own environments",
    )
    args = parser.parse_args(argv)
    builder = runpy.run_path(str(FOLDER / "build.py"))
    report: dict[str, Any] = {"torch": TORCH_REQUIREMENT}
    given = args.torch_pythons.split(",") if args.torch_pythons else []
    if given and len(given) != 2:
        parser.error("--torch-pythons wants two paths: PATCHED,UNPATCHED")
    for position, (role, variant) in enumerate(
        (("patched", args.variant), ("unpatched", UNPATCHED[args.variant]))
    ):
        if given:
            venv_python = Path(given[position])
        else:
            python = builder["cached_build"](variant)
            if python is None:
                print(
                    f"torch_dynamo.py: the {variant} build is missing or "
                    "out of date; run `python3 implementations/cpython-3.13/"
                    f"build.py --variant {variant}` first",
                    file=sys.stderr,
                )
                return 2
            venv_python = torch_python(variant, python)
        storage = run_workload(venv_python, STORAGE_WORKLOAD)
        report[role] = {
            "storage": storage,
            "storage_ok": storage_ok(storage),
            "transformed": run_workload(venv_python, TRANSFORMED_WORKLOAD),
        }
    unpatched_transformed = report["unpatched"]["transformed"].get("result")
    report["ok"] = (
        report["patched"]["storage_ok"]
        and report["unpatched"]["storage_ok"]
        and unpatched_transformed == {"value": [3.0, 3.0]}
    )
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
