"""pyperformance on CPython 3.13.15: patched against unpatched, both builds.

Usage::

    python benchmarks/bench_pyperformance.py            # writes latest.json
    python benchmarks/bench_pyperformance.py --benchmarks nbody,go

``tox -e bench-cpython`` runs it after ``run.py``.  It needs the builds
of ``implementations/cpython-3.13/build.py`` (``baseline``, ``patched``
and their ``-ft`` variants); a pair that is missing is skipped with its
reason.  What it does:

1. Makes a virtual environment per build (``python -m venv``: pip comes
   from the build's own ensurepip) and installs pyperf into it from PyPI.
2. Compiles the start-up consumer (``cpython313/startup_consumer.c``)
   against each build, next to a ``sitecustomize.py`` that imports it;
   that folder on ``PYTHONPATH`` makes every process, pyperf's workers
   included, hold an extra index from start-up and store a value in
   every code object it builds (constructor hook on the patched build,
   code watcher on the unpatched one).  Each build is checked to really
   run the consumer before any figure is taken.
3. Runs the benchmarks of the pyperformance package (their
   ``run_benchmark.py`` scripts, with the manifest's arguments) through
   pyperf with few processes and values, on every configuration:
   unpatched, patched, both with the consumer, and the unpatched build a
   second time (the A/A run that shows the noise floor).  The
   configurations take turns within each benchmark, in an order that
   rotates, so a slow phase of the shared machine does not fall on one
   configuration only.
4. Per benchmark, the ratio of medians; per build and consumer setting,
   the geometric mean of the ratios with a 95 % interval (from the
   spread of the log ratios) and their range; the same for the A/A pair.
   The figures go into the ``pyperformance`` list of
   ``benchmarks/results/latest.json`` (other entries are kept).

On a shared machine the timings of step 3 jitter by far more than the
1 % the comparison is about (the A/A pair shows how much).  With
``--metric instructions`` step 3 instead runs each benchmark once per
configuration, one value of one loop in a single process
(``--debug-single-value``), under callgrind with a fixed hash seed, and
counts the instructions the whole process executes, start-up and imports
included.  Those counts repeat run to run, so no A/A run is made (its
ratio is reported as 1) and the patched/unpatched geometric mean is exact
for what it measures: work done, not cache or branch behaviour.  Those
rows go into the ``pyperformance_instructions`` list.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_build import CFLAGS, HERE
from bench_like_for_like import HARNESS, Build, find_builds

RESULTS = HERE / "results" / "latest.json"

#: Benchmarks that need nothing beyond the standard library (so every
#: build, the free-threaded ones included, runs them without compiling
#: third-party extensions), of several kinds: numeric, object-heavy,
#: generators and coroutines, regular expressions, serialisation,
#: start-up (which builds every code object of site and its imports).
DEFAULT_BENCHMARKS = (
    "chaos",
    "comprehensions",
    "coroutines",
    "deepcopy",
    "deltablue",
    "fannkuch",
    "float",
    "generators",
    "go",
    "hexiom",
    "json_dumps",
    "json_loads",
    "logging",
    "nbody",
    "nqueens",
    "pathlib",
    "pickle_pure_python",
    "pyflate",
    "python_startup",
    "raytrace",
    "regex_compile",
    "richards",
    "spectral_norm",
    "unpack_sequence",
)

#: (configuration name, patched build?, consumer active?)
CONFIGS = (
    ("unpatched", False, False),
    ("patched", True, False),
    ("unpatched+consumer", False, True),
    ("patched+consumer", True, True),
    ("unpatched-again", False, False),
)

#: The project's target: the patched build within 1 % of the unpatched one.
TARGET_PERCENT = 1.0

_START = time.monotonic()


def log(message: str) -> None:
    """Report progress on stderr."""
    elapsed = time.monotonic() - _START
    print(
        f"[pyperformance {elapsed:7.1f}s] {message}",
        file=sys.stderr,
        flush=True,
    )


def _run(
    cmd: Sequence[str], env: dict[str, str] | None = None, timeout: int = 1800
) -> str:
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd[:4])}\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        )
    return proc.stdout


def default_workdir() -> Path:
    """Virtual environments and raw results, outside the checkout."""
    env = os.environ.get("COEXTRA_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "coextra"
    return base / "pyperformance"


@dataclass(frozen=True)
class Target:
    """A build made ready: its venv's python and its consumer folder."""

    build: Build
    python: Path
    consumer_dir: Path


def pyperf_version() -> str:
    """Return the pyperf version here; the venvs get the same."""
    return str(importlib.import_module("pyperf").__version__)


def prepare(build: Build, workdir: Path) -> Target:
    """Make the venv and the consumer of one build; check the consumer."""
    venv = workdir / f"venv-{build.variant}"
    python = venv / "bin" / "python"
    if not python.is_file():
        log(f"creating the virtual environment of {build.variant}")
        _run([str(build.python), "-m", "venv", str(venv)])
    version = pyperf_version()
    check = subprocess.run(
        [
            str(python),
            "-c",
            f"import pyperf; assert pyperf.__version__ == {version!r}",
        ],
        capture_output=True,
        check=False,
    )
    if check.returncode != 0:
        log(f"installing pyperf {version} into {build.variant}'s venv")
        _run([str(python), "-m", "pip", "install", "-q", f"pyperf=={version}"])
    consumer_dir = workdir / f"consumer-{build.variant}"
    build_consumer(build, python, consumer_dir)
    return Target(build, python, consumer_dir)


def build_consumer(build: Build, python: Path, outdir: Path) -> None:
    """Compile the start-up consumer and check that it is active."""
    outdir.mkdir(parents=True, exist_ok=True)
    suffix = _run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))",
        ]
    ).strip()
    include = build.prefix / "include" / f"python{build.abi}"
    _run(
        [
            os.environ.get("CC", "gcc"),
            *CFLAGS,
            "-fPIC",
            "-shared",
            f"-I{include}",
            str(HARNESS / "startup_consumer.c"),
            "-o",
            str(outdir / f"_coextra_bench_consumer{suffix}"),
        ]
    )
    shutil.copyfile(
        HARNESS / "consumer_sitecustomize.py", outdir / "sitecustomize.py"
    )
    probe = (
        "import sys, _coextra_bench_consumer as c\n"
        "def f(): pass\n"
        "stored, _ = c.counts()\n"
        "gil = getattr(sys, '_is_gil_enabled', lambda: True)()\n"
        "print(stored, int(gil))\n"
    )
    out = _run([str(python), "-c", probe], env=consumer_env(outdir)).split()
    stored, gil = int(out[0]), int(out[1])
    if stored < 10:
        raise RuntimeError(
            f"{build.variant}: the start-up consumer stored into only "
            f"{stored} code objects: it is not active"
        )
    if build.free_threaded and gil:
        raise RuntimeError(
            f"{build.variant}: importing the consumer enabled the GIL"
        )
    log(
        f"{build.variant}: start-up consumer active ({stored} code objects "
        f"at the first check)"
    )


def consumer_env(consumer_dir: Path | None) -> dict[str, str]:
    """Return the environment of a run, with or without the consumer."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if consumer_dir is not None:
        env["PYTHONPATH"] = str(consumer_dir)
    return env


@dataclass(frozen=True)
class Benchmark:
    """A pyperformance benchmark: its script and the manifest's args."""

    name: str
    runscript: str
    extra_opts: tuple[str, ...]


def manifest_benchmarks(names: Sequence[str]) -> list[Benchmark]:
    """Look the benchmarks up in the installed pyperformance's manifest."""
    # The package's own manifest loader, as `pyperformance run` uses it.
    loader = importlib.import_module("pyperformance._manifest")
    manifest = loader.load_manifest(None)
    known = {b.name: b for b in manifest.benchmarks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(
            f"unknown pyperformance benchmark(s): {', '.join(unknown)}; "
            f"see `pyperformance list`"
        )
    return [
        Benchmark(n, known[n].runscript, tuple(known[n].extra_opts or ()))
        for n in names
    ]


def run_one(
    target: Target,
    bench: Benchmark,
    consumer: bool,
    args: argparse.Namespace,
    out: Path,
) -> float:
    """Run one benchmark on one configuration; its median in seconds."""
    cmd = [
        str(target.python),
        "-u",
        bench.runscript,
        *bench.extra_opts,
        "--processes",
        str(args.processes),
        "--values",
        str(args.values),
        "--warmups",
        "1",
        "--output",
        str(out),
    ]
    if consumer:
        cmd += ["--inherit-environ", "PYTHONPATH"]
    env = consumer_env(target.consumer_dir if consumer else None)
    if out.exists():
        out.unlink()
    _run(cmd, env=env)
    # Some scripts run several benchmarks (deepcopy: three); they count
    # as one, the geometric mean of their medians.
    suite = importlib.import_module("pyperf").BenchmarkSuite.load(str(out))
    medians = [float(b.median()) for b in suite.get_benchmarks()]
    return math.exp(statistics.fmean(math.log(m) for m in medians))


def count_instructions(
    target: Target, bench: Benchmark, consumer: bool
) -> float:
    """Count the instructions of one single-value run under callgrind."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        str(target.python),
        "-u",
        bench.runscript,
        *bench.extra_opts,
        "--debug-single-value",
    ]
    env = consumer_env(target.consumer_dir if consumer else None)
    # A fixed seed makes dict and set iteration, and so the work done,
    # the same from run to run.
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=3600,
    )
    collected = [
        line.split("Collected :", 1)[1]
        for line in proc.stderr.splitlines()
        if "Collected :" in line
    ]
    if proc.returncode != 0 or not collected:
        raise RuntimeError(
            f"callgrind run of {bench.name} failed ({proc.returncode}):\n"
            f"{proc.stdout[-1000:]}{proc.stderr[-2000:]}"
        )
    return float(collected[-1].strip())


def geomean_row(ratios: Sequence[float]) -> dict[str, Any]:
    """Geometric mean, its 95 % interval and the range of the ratios."""
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    sd = statistics.stdev(logs) if len(logs) > 1 else 0.0
    half = 1.96 * sd / math.sqrt(len(logs))
    return {
        "geomean": math.exp(mean),
        "spread": [math.exp(mean - half), math.exp(mean + half)],
        "geometric_sd": math.exp(sd),
        "min": min(ratios),
        "max": max(ratios),
        "benchmarks": len(ratios),
    }


def summarize(
    label: str, medians: dict[str, dict[str, float]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return the ``pyperformance`` rows of one build label, and details."""
    names = sorted(medians)

    def ratios(num: str, den: str) -> list[float]:
        return [medians[n][num] / medians[n][den] for n in names]

    if all("unpatched-again" in medians[n] for n in names):
        aa = geomean_row(ratios("unpatched-again", "unpatched"))
    else:
        aa = geomean_row([1.0] * len(names))
    rows = []
    for consumer in (False, True):
        tail = "+consumer" if consumer else ""
        row = geomean_row(ratios(f"patched{tail}", f"unpatched{tail}"))
        within = abs(row["geomean"] - 1.0) * 100.0 <= TARGET_PERCENT
        rows.append(
            {
                "build": label,
                "consumer": consumer,
                **row,
                "aa_geomean": aa["geomean"],
                "aa_spread": aa["spread"],
                "within_target": within,
            }
        )
    details: dict[str, Any] = {
        "aa": aa,
        "consumer_cost_unpatched": geomean_row(
            ratios("unpatched+consumer", "unpatched")
        ),
        "consumer_cost_patched": geomean_row(
            ratios("patched+consumer", "patched")
        ),
        "per_benchmark": medians,
    }
    return rows, details


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and merge it into the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--benchmarks",
        default=",".join(DEFAULT_BENCHMARKS),
        help="Comma-separated pyperformance benchmarks. Default: 24 "
        "standard-library-only ones",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=3,
        help="pyperf worker processes per benchmark. Default: %(default)r",
    )
    parser.add_argument(
        "--values",
        type=int,
        default=3,
        help="pyperf values per process. Default: %(default)r",
    )
    parser.add_argument(
        "--metric",
        choices=("time", "instructions"),
        default="time",
        help="What to compare: pyperf timings, or instructions counted "
        "by callgrind over one single-value run. Default: %(default)r",
    )
    parser.add_argument(
        "--builds",
        default="3.13.15,3.13.15t",
        help="Build labels to compare. Default: %(default)r",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=default_workdir(),
        help="Virtual environments and raw results. Default: "
        "$COEXTRA_CACHE/pyperformance",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help="Results file to update. Default: latest.json",
    )
    args = parser.parse_args(argv)
    names = [n for n in args.benchmarks.split(",") if n]
    benchmarks = manifest_benchmarks(names)
    builds, missing = find_builds()
    labels = [label for label in args.builds.split(",") if label]
    pairs: dict[str, tuple[Build, Build]] = {}
    skipped: dict[str, str] = {}
    for label in labels:
        ft = label.endswith("t")
        base = builds.get("baseline-ft" if ft else "baseline")
        pep = builds.get("patched-ft" if ft else "patched")
        if base is None or pep is None:
            variant = ("baseline" if base is None else "patched") + (
                "-ft" if ft else ""
            )
            skipped[label] = missing.get(variant, f"{variant} is missing")
            log(f"{label} skipped: {skipped[label]}")
            continue
        pairs[label] = (base, pep)
    if not pairs:
        print(
            "bench_pyperformance: no pair of unpatched and patched 3.13.15 "
            "builds: " + "; ".join(skipped.values()),
            file=sys.stderr,
        )
        return 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    targets = {
        (label, patched): prepare(build, args.workdir)
        for label, pair in pairs.items()
        for patched, build in zip((False, True), pair, strict=True)
    }
    medians: dict[str, dict[str, dict[str, float]]] = {
        label: {} for label in pairs
    }
    # Instruction counts repeat run to run, so the A/A configuration only
    # costs time there; its ratio is reported as exactly 1.
    counting = args.metric == "instructions"
    with tempfile.TemporaryDirectory(prefix="coextra-pyperf-") as tmp:
        turn = 0
        for bench in benchmarks:
            for label in pairs:
                order = list(CONFIGS)
                # Rotate, so that no configuration always runs first.
                shift = turn % len(order)
                order = order[shift:] + order[:shift]
                turn += 1
                for config, patched, consumer in order:
                    if config == "unpatched-again" and counting:
                        continue
                    target = targets[(label, patched)]
                    log(f"{bench.name} on {label} {config}")
                    out = Path(tmp) / f"{bench.name}-{label}-{config}.json"
                    if args.metric == "instructions":
                        value = count_instructions(target, bench, consumer)
                    else:
                        value = run_one(target, bench, consumer, args, out)
                    medians[label].setdefault(bench.name, {})[config] = value
    rows: list[dict[str, Any]] = []
    if args.metric == "instructions":
        method: dict[str, Any] = {
            "statistic": "instructions of one process running one value "
            "of one loop (pyperf --debug-single-value) under callgrind "
            "with PYTHONHASHSEED=0, start-up included; ratio patched "
            "over unpatched per benchmark; geometric mean over the "
            "benchmarks with a 95 % interval from the spread of the log "
            "ratios",
            "per_benchmark_unit": "instructions",
        }
    else:
        method = {
            "processes": args.processes,
            "values": args.values,
            "warmups": 1,
            "statistic": "median of each configuration's values; ratio "
            "patched over unpatched per benchmark; geometric mean over "
            "the benchmarks with a 95 % interval from the spread of the "
            "log ratios",
            "per_benchmark_unit": "seconds",
        }
    details: dict[str, Any] = {
        "benchmarks": names,
        **method,
        "aa": "unpatched-again over unpatched: two runs of the same "
        "build, the noise floor of this machine",
        "skipped": skipped,
        "build_keys": {
            t.build.variant: t.build.build_key for t in targets.values()
        },
        "load_average_at_end": list(os.getloadavg()),
        "pyperf": pyperf_version(),
        "host_python": sysconfig.get_python_version(),
    }
    for label in pairs:
        label_rows, label_details = summarize(label, medians[label])
        rows += label_rows
        details[label] = label_details
    results = json.loads(args.output.read_text(encoding="utf-8"))
    key = "pyperformance"
    if args.metric == "instructions":
        key = "pyperformance_instructions"
    # A run of some builds keeps the figures of the others.
    kept = [row for row in results.get(key, []) if row["build"] not in pairs]
    # The kept rows keep their details too: a run of 3.13.15t alone must
    # not drop what an earlier run measured on 3.13.15.
    old_details = results.get(f"{key}_details", {})
    for label in {row["build"] for row in kept}:
        if label in old_details:
            details[label] = old_details[label]
    results[key] = kept + rows
    results[f"{key}_details"] = details
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    for row in rows:
        lo, hi = row["spread"]
        print(
            f"{row['build']:9} consumer={row['consumer']!s:5} geomean "
            f"{row['geomean']:.4f} [{lo:.4f}, {hi:.4f}]  A/A "
            f"{row['aa_geomean']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
