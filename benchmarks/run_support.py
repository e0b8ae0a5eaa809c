"""What every part of ``run.py`` shares: sizes, progress, the harness.

``Settings`` holds the sizes of one run (``--quick`` shrinks them),
``log`` reports progress on stderr, ``run_json`` runs a harness command
and parses its JSON, ``summarize`` and ``machine_info`` describe the
figures and the machine.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import bench_build

#: Targets of the design: the inline Get against a plain load, and the
#: hook chain's cost against compile().
TARGET_INLINE_VS_RAW = 1.5
TARGET_HOOK_PERCENT = 2.0


class Settings:
    """Sizes of one run; --quick shrinks every one of them."""

    def __init__(self, quick: bool) -> None:
        """Choose the sizes of a full or a quick run."""
        self.quick = quick
        # One timed sample lasts about this long; see bench.h and
        # cmd_time in harness/bench_main.c for why samples are short.
        self.sample_us = 200.0 if quick else 1000.0
        # Repeats per round; the C cases are timed in `rounds` rounds
        # spread over the run (see CaseTimer).
        self.repeats = 11 if quick else 34
        self.rounds = 1 if quick else 3
        self.hook_iterations = 2_000 if quick else 20_000
        self.watch_iterations = 3_000
        self.sample_modules = 6 if quick else 40
        self.compile_repeats = 2 if quick else 5
        # Counts are deterministic (fixed hash seed, instrumented region
        # only), so a modest gap gives exact per-operation figures.
        self.callgrind_n = (1_000, 21_000)
        self.callgrind_cases: tuple[str, ...] = (
            ("raw_load", "reference_get_inline")
            if quick
            else (
                "raw_load",
                "reference_get_inline",
                "reference_get_fallback",
                "reference_get_call",
                "reference_set",
                "reference_set_free",
                "c_hash_get",
                "cpython_get",
                "cpython_set",
                "cpython_set_free",
                "reference_create_0hook",
                "reference_create_1hook",
            )
        )
        # compile() under callgrind takes many seconds: full run only.
        self.count_compile = not quick
        # 3.12 and 3.13 each need their own harness build: full run only.
        self.watcher_minors: tuple[int, ...] = () if quick else (12, 13)
        self.stock_minors: tuple[int, ...] = (
            () if quick else (6, 7, 8, 9, 10, 11, 12, 13)
        )
        # The like-for-like cases on the CPython 3.13.15 builds.
        self.thread_reads = 200_000 if quick else 5_000_000
        self.thread_repeats = 3 if quick else 9
        # Compile a sample of about 40 stdlib files instead of all.
        self.census_sample = quick


_START = time.monotonic()


def log(message: str) -> None:
    """Report progress on stderr; stdout is left for the summary."""
    elapsed = time.monotonic() - _START
    print(f"[bench {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


def run_json(cmd: Sequence[str], env: dict[str, str] | None = None) -> Any:
    """Run a harness command and parse the JSON object it prints."""
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return json.loads(proc.stdout)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Minimum and median of one case's samples."""
    return {
        "ns_min": min(samples),
        "ns_median": statistics.median(samples),
    }


def machine_info(settings: Settings, host: bench_build.PythonInfo) -> Any:
    """Describe the machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": host.version,
        "compiler": bench_build.compiler_version(),
        "cflags": list(bench_build.CFLAGS),
        "load_average_at_start": list(os.getloadavg()),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "quick": settings.quick,
    }
