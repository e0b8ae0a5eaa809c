"""The like-for-like cases on the CPython 3.13.15 builds.

``bench_like_for_like`` measures; this module finds the builds, runs
the rounds and the extras, and with ``--cpython313-only`` replaces their
entries in an existing results file.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench_like_for_like
from run_support import Settings, log

VARIANTS_313 = tuple(bench_like_for_like.VARIANTS)


def like_for_like_setup(
    workdir: Path, skip: bool, labels: Sequence[str] = ()
) -> tuple[bench_like_for_like.LikeForLike | None, dict[str, Any]]:
    """Build the like-for-like harness on every 3.13.15 build found.

    With ``labels``, only the builds of those labels (``3.13.15``,
    ``3.13.15t``).
    """
    builds, missing = bench_like_for_like.find_builds()
    if labels:
        builds = {v: b for v, b in builds.items() if b.label in labels}
        missing = {
            v: reason
            for v, reason in missing.items()
            if bench_like_for_like.VARIANTS[v][0] in labels
        }
    details: dict[str, Any] = {
        "skipped": missing,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "load_average_at_start": list(os.getloadavg()),
    }
    if skip:
        details["skipped"] = {v: "--no-cpython313" for v in VARIANTS_313}
        return None, details
    for variant, reason in missing.items():
        log(f"like-for-like: {variant} skipped: {reason}")
    if not builds:
        return None, details
    lfl = bench_like_for_like.LikeForLike(builds, workdir, log)
    details["builds"] = {
        variant: {
            "label": h.build.label,
            "patched": h.build.patched,
            "free_threaded": h.build.free_threaded,
            "build_key": h.build.build_key,
        }
        for variant, h in lfl.harnesses.items()
    }
    return lfl, details


def like_for_like_extras(
    lfl: bench_like_for_like.LikeForLike | None, settings: Settings
) -> dict[str, Any]:
    """Instructions, census, memory and threads of the 3.13.15 builds."""
    if lfl is None:
        return {}
    counts = lfl.instructions(settings.callgrind_n, settings.quick)
    census = bench_like_for_like.run_census(
        lfl, settings.quick or settings.census_sample
    )
    return {
        "counts": counts,
        "census": bench_like_for_like.census_rows(lfl, census),
        "memory": bench_like_for_like.memory_rows(lfl, census),
        "threads": lfl.threads(settings.thread_reads, settings.thread_repeats),
    }


def previous_pyperformance(path: Path) -> dict[str, Any]:
    """Return the pyperformance entries of the file being replaced."""
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = {}
    return {
        "pyperformance": old.get("pyperformance", []),
        "pyperformance_details": old.get("pyperformance_details", {}),
    }


def cpython313_only(
    settings: Settings, output: Path, labels: Sequence[str]
) -> int:
    """Measure the 3.13.15 builds; replace their entries in ``output``.

    With ``labels``, only those builds' entries are replaced.
    """
    try:
        results = json.loads(output.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"--cpython313-only updates an existing results file: {exc}"
        ) from exc
    with tempfile.TemporaryDirectory(prefix="coextra-bench-") as tmp:
        lfl, details = like_for_like_setup(
            Path(tmp) / "lfl", skip=False, labels=labels
        )
        if lfl is None:
            raise SystemExit(
                "no CPython 3.13.15 build: "
                + "; ".join(details["skipped"].values())
            )
        for _ in range(settings.rounds):
            lfl.time_round(settings.sample_us, settings.repeats)
        extras = like_for_like_extras(lfl, settings)
        rows = bench_like_for_like.like_for_like_rows(
            lfl, extras.pop("counts")
        )
    measured = {h.build.label for h in lfl.harnesses.values()}

    def merged(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> Any:
        return [r for r in old if r.get("build") not in measured] + new

    rows = merged(results.get("like_for_like", []), rows)
    results["like_for_like"] = rows
    memory = [r for r in results["memory"] if "build" in r]
    memory = merged(memory, extras["memory"])
    results["memory"] = [
        r for r in results["memory"] if "build" not in r
    ] + memory
    results["stdlib_census"] = merged(
        results.get("stdlib_census", []), extras["census"]
    )
    threads = merged(results.get("thread_scaling", []), extras["threads"])
    results["thread_scaling"] = threads
    old_details = results.get("like_for_like_details", {})
    details["builds"] = {
        v: b
        for v, b in old_details.get("builds", {}).items()
        if b["label"] not in measured
    } | details.get("builds", {})
    details["skipped"] = {
        v: reason
        for v, reason in old_details.get("skipped", {}).items()
        if v not in details["builds"]
    } | details["skipped"]
    results["like_for_like_details"] = details
    lfl_targets = bench_like_for_like.targets(rows, memory, threads)
    results["targets"] = {
        k: v
        for k, v in results.get("targets", {}).items()
        if not k.startswith("pep_")
    } | lfl_targets
    output.write_text(json.dumps(results, indent=2) + "\n")
    for row in rows:
        count = row["instructions"]
        print(
            f"{row['build']:9} {row['design']:15} {row['op']:9} "
            f"{row['ns']:7.2f} ns "
            f"{'--' if count is None else f'{count:6.1f}'} instructions"
        )
    for name, target in lfl_targets.items():
        verdict = "met" if target["met"] else "MISSED"
        print(f"{name:45} {target['measured']:9.3f} {verdict}")
    return 0
