"""Instruction counts under callgrind.

Instructions per operation are (count(N2) - count(N1)) / (N2 - N1) of
two runs of a case, so that set-up cancels out.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from run_support import Settings, log


@dataclass(frozen=True)
class CountJob:
    """One callgrind measurement: a case at two sizes."""

    case: str
    n: tuple[int, int]
    files: tuple[str, ...] = ()


def callgrind_count(
    binary: Path, case: str, n: int, files: Sequence[str], tmp: Path
) -> tuple[int, Any]:
    """Instructions executed by ``binary count case n files...``.

    The harness turns instrumentation on around the measured region when
    it was built with valgrind's client-request header; otherwise the
    whole run is counted.  Either way the caller takes a difference of
    two runs, in which everything outside the loop cancels out.  Returns
    the count and what the harness printed.
    """
    out = tmp / f"callgrind.{binary.name}.{case}.{n}"
    # A fixed hash seed: the embedded interpreter must execute the same
    # instructions in both runs for the difference to be exact.
    env = dict(os.environ, PYTHONHASHSEED="0")
    for instr_at_start in ("no", "yes"):
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--instr-atstart={instr_at_start}",
                f"--callgrind-out-file={out}",
                str(binary),
                "count",
                case,
                str(n),
                *files,
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        printed = json.loads(proc.stdout)
        if printed["instrumented_region"]:
            break
    # "totals:" is the sum over the instrumented part; "summary:" is 0
    # when instrumentation started late.
    with open(out) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1]), printed
    raise RuntimeError(f"no totals line in {out}")


def count_per_op(binary: Path, jobs: Sequence[CountJob]) -> list[Any]:
    """Instructions per operation of each job, from two callgrind runs."""
    runs = [(job, n) for job in jobs for n in job.n]
    with tempfile.TemporaryDirectory(prefix="coextra-cg-") as tmp:
        # Counts do not depend on timing: both cores can be used.
        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = list(
                pool.map(
                    lambda run: callgrind_count(
                        binary, run[0].case, run[1], run[0].files, Path(tmp)
                    ),
                    runs,
                )
            )
    rows = []
    for i, job in enumerate(jobs):
        (low, _), (high, printed) = counts[2 * i], counts[2 * i + 1]
        row = {
            "name": job.case,
            "count": (high - low) / (job.n[1] - job.n[0]),
            "n": list(job.n),
            "total": [low, high],
        }
        if "code_objects" in printed:
            row["code_objects"] = printed["code_objects"]
        rows.append(row)
    return rows


def compile_job(sample: Sequence[str]) -> CountJob:
    """Count one compile() of two modules of the typical sample.

    One compile of the whole sample under callgrind takes minutes; two
    modules (the first and the middle one) stand for it.  The region is
    instrumented alone, so 0 and 1 compiles make the difference.
    """
    return CountJob(
        "cpython_compile", (0, 1), (sample[0], sample[len(sample) // 2])
    )


def instructions(
    binary: Path, settings: Settings, sample: Sequence[str]
) -> list[dict[str, Any]]:
    """Instructions per operation of each case; compile per code object."""
    jobs = [
        CountJob(case, settings.callgrind_n)
        for case in settings.callgrind_cases
    ]
    if settings.count_compile:
        jobs.append(compile_job(sample))
    log(f"callgrind: {len(jobs)} cases x 2 runs")
    rows: list[dict[str, Any]] = count_per_op(binary, jobs)
    if settings.count_compile:
        compiled = rows[-1]
        compiled["name"] = "cpython_compile_per_code_object"
        compiled["count"] /= compiled["code_objects"]
    return rows


def reference_hook_instructions(
    rows: list[dict[str, Any]], reference: dict[str, Any]
) -> None:
    """Add the instruction-count view of the reference's hook overhead."""
    count = {row["name"]: row["count"] for row in rows}
    if "reference_create_1hook" not in count:
        return
    without = count["reference_create_0hook"]
    with_hook = count["reference_create_1hook"]
    reference["instructions_per_code_without"] = without
    reference["instructions_per_code_with"] = with_hook
    if "cpython_compile_per_code_object" not in count:
        return
    per_code = count["cpython_compile_per_code_object"]
    reference["compile_instructions_per_code"] = per_code
    reference["percent_of_compile_instructions"] = (
        100.0 * (with_hook - without) / per_code
    )
