#!/usr/bin/env python3
"""Measure the patched CPython 3.13.15 against the unpatched build.

Usage::

    python3 implementations/cpython-3.13/measure.py \
        --patched PATH --baseline PATH [--output results.json]

Both interpreters are built from the same source by ``build.py`` (the
baseline with ``--variant baseline``).  Every figure is measured in this
one run, on both builds, by the same probe code (run inside each target
interpreter), so that ratios compare like with like.  The fields of the
JSON written are described in this folder's README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: Runs inside a target interpreter: a consumer is one index allocated
#: through ctypes (the PEP's C API is reachable as ctypes.pythonapi).
PROBE_PRELUDE = r"""
import ctypes, json, os, sys, time

api = ctypes.pythonapi
FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
request = api.PyUnstable_Eval_RequestCodeExtraIndex
request.argtypes = (FREE,)
request.restype = ctypes.c_ssize_t
set_extra = api.PyUnstable_Code_SetExtra
set_extra.argtypes = (ctypes.py_object, ctypes.c_ssize_t, ctypes.c_void_p)
set_extra.restype = ctypes.c_int
NO_FREE = FREE()

def var_size(code):
    # Header plus bytecode, rounded to a pointer as CPython allocates it;
    # what sys.getsizeof reports beyond this is extra storage.
    raw = type(code).__basicsize__ + len(code.co_code)
    return (raw + 7) // 8 * 8

def walk(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, type(code)):
            yield from walk(const)

def sources(lib):
    out = []
    for root, dirs, files in os.walk(lib):
        dirs.sort()
        if "site-packages" in root:
            continue
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    out.append((path, f.read()))
    return out

def compile_all(srcs):
    codes = []
    for path, data in srcs:
        try:
            codes.append(compile(data, path, "exec", dont_inherit=True))
        except (SyntaxError, ValueError):
            pass  # deliberately broken test inputs
    return codes
"""

SIZES = r"""
out = {}
small = "def f(x):\n    return x + 1\n"
def one():
    return compile(small, "<m>", "exec").co_consts[0]
c = one()
out["no_consumer"] = sys.getsizeof(c)
out["var_size"] = var_size(c)
out["code_units"] = len(c.co_code) // 2
index = request(NO_FREE)
c = one()
out["one_consumer"] = sys.getsizeof(c)
set_extra(c, index, 1)
out["one_consumer_value_set"] = sys.getsizeof(c)
out["basicsize"] = type(c).__basicsize__
print(json.dumps(out))
"""

STDLIB = r"""
lib = os.path.dirname(os.__file__)
srcs = sources(lib)
result = {"files": len(srcs)}
def tally(codes, name):
    n = total = extra = 0
    for top in codes:
        for code in walk(top):
            n += 1
            size = sys.getsizeof(code)
            total += size
            extra += size - var_size(code)
    result[name] = {"code_objects": n, "sizeof_total": total,
                    "beyond_var_size": extra}
tally(compile_all(srcs), "no_consumer")
request(NO_FREE)
tally(compile_all(srcs), "one_consumer")
print(json.dumps(result))
"""

COMPILE_BENCH = r"""
lib = os.path.dirname(os.__file__)
srcs = sources(lib)
consumer = int(sys.argv[1])
runs = int(sys.argv[2])
if consumer:
    request(NO_FREE)
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    compile_all(srcs)
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""

#: Deterministic cost: instructions (callgrind) to compile every
#: INSTR_STRIDE-th library file, minus those of the same process that
#: only reads the files.  Wall time on a shared 2-core machine is noisy.
INSTR_STRIDE = 10

INSTR_BENCH = r"""
lib = os.path.dirname(os.__file__)
srcs = sources(lib)[::int(sys.argv[1])]
mode = sys.argv[2]
if mode == "consumer":
    request(NO_FREE)
if mode != "read":
    compile_all(srcs)
"""

INSTR_IMPORT = r"""
import sys
for name in sys.argv[1:]:
    __import__(name)
"""

IMPORTS = (
    "argparse asyncio dataclasses decimal email.parser http.client json "
    "logging pathlib typing unittest xml.etree.ElementTree"
).split()

IMPORT_BENCH = r"""
import time
t0 = time.perf_counter()
for name in NAMES:
    __import__(name)
print(time.perf_counter() - t0)
"""


def probe(python: Path, body: str, *args: str) -> Any:
    """Run probe code in a target interpreter; return its JSON output."""
    proc = subprocess.run(
        [str(python), "-I", "-c", PROBE_PRELUDE + body, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout)


def instructions(python: Path, body: str, *args: str) -> int:
    """Instructions executed by the target running ``body`` (callgrind)."""
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            str(python),
            "-I",
            "-c",
            body,
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise RuntimeError(f"no callgrind summary:\n{proc.stderr}")
    return int(match.group(1))


def count_instructions(builds: dict[str, Path]) -> dict[str, Any]:
    """Instruction counts of compiling and importing, per build."""
    out: dict[str, Any] = {
        "stride": INSTR_STRIDE,
        "import_modules": IMPORTS,
    }
    stride = str(INSTR_STRIDE)
    for name, py in builds.items():
        body = PROBE_PRELUDE + INSTR_BENCH
        read = instructions(py, body, stride, "read")
        none = instructions(py, body, stride, "none")
        consumer = instructions(py, body, stride, "consumer")
        empty = instructions(py, "pass")
        imports = instructions(py, INSTR_IMPORT, *IMPORTS)
        out[name] = {
            "compile_none": none - read,
            "compile_one_consumer": consumer - read,
            "import": imports - empty,
        }
    for key in ("compile_none", "compile_one_consumer", "import"):
        out[f"ratio_{key}"] = out["patched"][key] / out["baseline"][key]
    return out


def import_time(python: Path, runs: int) -> float:
    """Best time to import IMPORTS in a fresh process (cached .pyc)."""
    body = f"NAMES = {IMPORTS!r}\n" + IMPORT_BENCH
    best = float("inf")
    for _ in range(runs):
        proc = subprocess.run(
            [str(python), "-I", "-c", body],
            check=True,
            capture_output=True,
            text=True,
        )
        best = min(best, float(proc.stdout))
    return best


def measure(patched: Path, baseline: Path, runs: int) -> dict[str, Any]:
    """Take every measurement on both builds."""
    builds = {"patched": patched, "baseline": baseline}
    out: dict[str, Any] = {
        "schema": "coextra-cpython-3.13-results/1",
        "cpython": "3.13.15",
        "machine": platform.machine(),
        "runs": runs,
        # Wall times are only comparable on an otherwise idle machine.
        "load_average_start": list(os.getloadavg()),
    }
    out["small_code_sizeof"] = {
        name: probe(py, SIZES) for name, py in builds.items()
    }
    out["stdlib_compile"] = {
        name: probe(py, STDLIB) for name, py in builds.items()
    }
    out.update(wall_clock(builds, runs))
    out["load_average_end"] = list(os.getloadavg())
    if shutil.which("valgrind") is not None:
        out["instructions"] = count_instructions(builds)
    return out


def wall_clock(builds: dict[str, Path], runs: int) -> dict[str, Any]:
    """Best times to compile the library and to import IMPORTS.

    The builds take turns run by run (one compile of the whole library
    each, in a fresh process), so that a burst of load on this shared
    machine hits both rather than one build's whole series.
    """
    keys = [(name, consumer) for consumer in ("0", "1") for name in builds]
    times: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for _ in range(runs):
        for name, consumer in keys:
            times[(name, consumer)] += probe(
                builds[name], COMPILE_BENCH, consumer, "1"
            )
    bench: dict[str, Any] = {}
    for (name, consumer), series in times.items():
        key = f"{name}_{'one_consumer' if consumer == '1' else 'none'}"
        bench[key] = {"min_s": min(series), "times_s": series}
    bench["ratio_patched_over_baseline_none"] = (
        bench["patched_none"]["min_s"] / bench["baseline_none"]["min_s"]
    )
    bench["ratio_patched_over_baseline_one_consumer"] = (
        bench["patched_one_consumer"]["min_s"]
        / bench["baseline_one_consumer"]["min_s"]
    )
    imports: dict[str, Any] = {"modules": IMPORTS}
    best = {name: float("inf") for name in builds}
    for _ in range(runs * 4):
        for name, py in builds.items():
            best[name] = min(best[name], import_time(py, 1))
    for name in builds:
        imports[f"{name}_min_s"] = best[name]
    imports["ratio_patched_over_baseline"] = (
        imports["patched_min_s"] / imports["baseline_min_s"]
    )
    return {"compile_stdlib_seconds": bench, "import_seconds": imports}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patched", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--instructions-only",
        action="store_true",
        help="only count instructions with callgrind (merged into output)",
    )
    parser.add_argument(
        "--timings-only",
        action="store_true",
        help="only time compiling and importing (merged into output); "
        "for a quiet machine, after a full run",
    )
    # Under build/, like every run's output; tox -e regen commits it as
    # results/measure.json of this folder.
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE.parent.parent / "build" / "cpython-3.13" / "measure.json",
    )
    args = parser.parse_args(argv)
    builds = {"patched": args.patched, "baseline": args.baseline}
    if args.instructions_only:
        results = json.loads(args.output.read_text())
        results["instructions"] = count_instructions(builds)
    elif args.timings_only:
        results = json.loads(args.output.read_text())
        results["load_average_start"] = list(os.getloadavg())
        results["runs"] = args.runs
        results.update(wall_clock(builds, args.runs))
        results["load_average_end"] = list(os.getloadavg())
    else:
        results = measure(args.patched, args.baseline, args.runs)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
