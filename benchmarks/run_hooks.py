"""The cost of acting on code-object creation.

The reference's constructor hook chain against compile() of typical
stdlib modules (the host CPython embedded in the harness), and a real
code watcher on CPython 3.12 and 3.13, timed and counted the same way.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench_build
from run_callgrind import CountJob, compile_job, count_per_op
from run_support import TARGET_HOOK_PERCENT, Settings, log, run_json


def _overhead(
    with_hook: Sequence[float], without: Sequence[float]
) -> dict[str, float]:
    """Per-code overhead from interleaved samples with and without."""
    return {
        "ns_min": min(with_hook) - min(without),
        "ns_median": statistics.median(with_hook) - statistics.median(without),
        "ns_per_code_without": min(without),
        "ns_per_code_with": min(with_hook),
    }


def hook_overhead(
    binary: Path,
    host: bench_build.PythonInfo,
    settings: Settings,
    sample: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure hook_create_overhead; return the case and the details."""
    log(f"reference hook chain; compile() of {len(sample)} stdlib modules")
    hooks = run_json(
        [
            str(binary),
            "hook",
            str(settings.hook_iterations),
            str(settings.repeats * settings.rounds),
        ]
    )
    compiled = run_json(
        [str(binary), "compile", str(settings.compile_repeats), *sample]
    )
    codes = compiled["code_objects"]
    compile_ns = compiled["ns_min_sum"]["0"]
    per_code = compile_ns / codes
    ref = _overhead(hooks["ns_per_code"]["1"], hooks["ns_per_code"]["0"])
    ref["compile_ns_per_code"] = per_code
    ref["percent_of_compile"] = 100.0 * ref["ns_min"] / per_code
    ref["percent_of_compile_median"] = 100.0 * ref["ns_median"] / per_code
    details: dict[str, Any] = {
        "sample_modules": [os.path.basename(p) for p in sample],
        "code_objects": codes,
        "compile_python": host.version,
        "compile_ns": compile_ns,
        "target_percent": TARGET_HOOK_PERCENT,
        "reference": ref,
    }
    for minor in settings.watcher_minors:
        details[f"cpython-3.{minor}"] = watcher_overhead(
            minor, sample, settings
        )
    case = {
        "name": "hook_create_overhead",
        "ns_min": ref["ns_min"],
        "ns_median": ref["ns_median"],
        "percent_of_compile": ref["percent_of_compile"],
        "target_percent": TARGET_HOOK_PERCENT,
        "kind": "c",
    }
    return case, details


def watcher_overhead(
    minor: int, sample: list[str], settings: Settings
) -> dict[str, Any]:
    """Measure a real code watcher on CPython 3.<minor>, if installed."""
    python = bench_build.find_python(minor)
    if python is None:
        return {"available": False, "reason": f"python3.{minor} not found"}
    log(f"code watcher on CPython {python.version}")
    with tempfile.TemporaryDirectory(prefix="coextra-bench-") as tmp:
        binary = bench_build.build_harness(python, Path(tmp))
        watch = run_json(
            [
                str(binary),
                "watch",
                str(settings.watch_iterations),
                str(settings.repeats * settings.rounds),
            ]
        )
        compiled = run_json(
            [str(binary), "compile", str(settings.compile_repeats), *sample]
        )
        log(f"callgrind: code watcher on CPython {python.version}")
        counted = count_per_op(
            binary,
            [
                CountJob("cpython_create_0watch", settings.callgrind_n),
                CountJob("cpython_create_1watch", settings.callgrind_n),
                compile_job(sample),
            ],
        )
    without_watch, with_watch, compiled_count = counted
    compile_per_code = compiled_count["count"] / compiled_count["code_objects"]
    watch_instructions = with_watch["count"] - without_watch["count"]
    result: dict[str, Any] = _overhead(
        watch["ns_per_code"]["1"], watch["ns_per_code"]["0"]
    )
    without = compiled["ns_min_sum"]["0"]
    with_watcher = compiled["ns_min_sum"]["1"]
    per_code = without / compiled["code_objects"]
    result.update(
        {
            "available": True,
            "version": python.version,
            "code_objects": compiled["code_objects"],
            "failed_files": compiled["failed"],
            "compile_ns_per_code": per_code,
            "percent_of_compile": 100.0 * result["ns_min"] / per_code,
            "compile_ns_without": without,
            "compile_ns_with": with_watcher,
            "percent_measured_directly": 100.0
            * (with_watcher - without)
            / without,
            "instructions_per_code_without": without_watch["count"],
            "instructions_per_code_with": with_watch["count"],
            "compile_instructions_per_code": compile_per_code,
            "percent_of_compile_instructions": 100.0
            * watch_instructions
            / compile_per_code,
            "note": "the direct compile() A/B difference is far below "
            "the run-to-run noise of whole-module compile timings "
            "(several percent on a shared machine); the per-code "
            "figures, in ns and in instructions, are the estimates",
        }
    )
    return result
