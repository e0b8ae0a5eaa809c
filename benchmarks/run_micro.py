"""Micro cases: the C loops of the harness and the Python-level cases.

The C cases are timed in rounds spread over the run (``CaseTimer``);
ratios to ``raw_load`` use minima (see ``run.py``).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import bench_python
from run_support import Settings, log, run_json, summarize


class CaseTimer:
    """Timing rounds of the C cases, spread over the run.

    On a shared machine a slow phase (a busy neighbour on the same
    physical core) can last seconds, longer than one round; rounds taken
    minutes apart and pooled give the minimum a fair chance.
    """

    def __init__(self, binary: Path, settings: Settings) -> None:
        """Prepare to time ``binary``'s cases with ``settings``."""
        self.binary = binary
        self.settings = settings
        self.samples: dict[str, list[float]] = {}
        self.iterations: dict[str, list[int]] = {}

    def round(self) -> None:
        """Time every C case once more, ``settings.repeats`` times."""
        log(f"timing the C cases (round {self.rounds + 1})")
        data = run_json(
            [
                str(self.binary),
                "time",
                str(self.settings.sample_us),
                str(self.settings.repeats),
            ]
        )
        for name, values in data["cases"].items():
            self.samples.setdefault(name, []).extend(values)
            self.iterations.setdefault(name, []).append(
                data["iterations"][name]
            )

    @property
    def rounds(self) -> int:
        """How many rounds were taken so far."""
        return len(next(iter(self.iterations.values()), []))


def micro_cases(timer: CaseTimer, settings: Settings) -> list[dict[str, Any]]:
    """Time the Python cases; return the rows of every case."""
    samples = dict(timer.samples)
    iterations = dict(timer.iterations)
    log("timing the Python cases")
    py_samples, py_iterations = bench_python.time_cases(
        settings.sample_us * 1e3, settings.repeats * settings.rounds
    )
    samples.update(py_samples)
    iterations.update({k: [v] for k, v in py_iterations.items()})
    floor = min(samples["raw_load"])
    floor_median = statistics.median(samples["raw_load"])
    cases: list[dict[str, Any]] = []
    for name, values in samples.items():
        stats = summarize(values)
        cases.append(
            {
                "name": name,
                **stats,
                "ratio_to_raw_load": stats["ns_min"] / floor,
                "ratio_median_to_raw_load": stats["ns_median"] / floor_median,
                "repeats": len(values),
                "iterations_per_sample": iterations[name],
                "kind": "python" if name.startswith("py_") else "c",
            }
        )
    return cases
