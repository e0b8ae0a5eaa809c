#!/usr/bin/env python3
"""Run CPython's own tests on the patched 3.13.15 and on the unpatched build.

Usage (from the repository root)::

    python3 implementations/cpython-3.13/run_cpython_tests.py \
        [--settings plain,consumer,ft] [--modules test_code,test_dis] \
        [--jobs 2] [--timeout 900] [--output FILE]

Each *setting* runs the same modules with ``python -m test`` on two
interpreters built from the same source, one unpatched and one with the
PEP 9999 series:

``plain``     default build (GIL), no consumer;
``consumer``  default build, with a consumer active from start-up: a
              ``sitecustomize`` (``consumers/sitecustomize.py``) that
              requests an extra index and stores a value into every new
              code object (through a constructor hook on the patched
              build, a code watcher on the unpatched one), freeing each
              value when its code object dies;
``ft``        free-threaded build (``--disable-gil``), no consumer.

Run one comparison at a time: ``test_perf_profiler`` deletes every
``/tmp/perf-*.map`` file that appeared during a test, including those of
a concurrent run, which then fails at random.

The builds must be cached (``build.py --variant V`` makes them; this
script never builds, so it cannot start a half-hour build by surprise).
The output file records, per setting and module, the outcome on each
build and the test cases that failed, and lists the *patched-only*
failures: modules or test cases that fail on the patched build and pass
on the unpatched one.  The exit status is 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Under build/, like every run's output; ``tox -e regen`` commits it as
#: ``results/regrtest.json`` of this folder.
DEFAULT_OUTPUT = (
    HERE.parent.parent / "build" / "cpython-3.13" / "regrtest.json"
)

#: The modules the comparison covers (those that exist in 3.13 are run).
MODULES = (
    "test_code test_capi test_marshal test_sys test_compile test_dis "
    "test_inspect test_gc test_threading test_sys_settrace test_trace "
    "test_pdb test_importlib test_ast test_frame test_weakref test_copy "
    "test_pickle test_types test_profile test_cprofile test_bdb "
    "test_doctest test_tracemalloc test_perf_profiler test_free_threading "
    "test_interpreters"
).split()

#: setting -> (unpatched variant, patched variant, consumer from start-up)
SETTINGS = {
    "plain": ("baseline", "patched", False),
    "consumer": ("baseline", "patched", True),
    "ft": ("baseline-ft", "patched-ft", False),
}


def fail(message: str) -> int:
    """Print a one-line error and return the exit status for bad input."""
    print(f"run_cpython_tests.py: {message}", file=sys.stderr)
    return 2


def build_consumer(python: Path, dest: Path) -> None:
    """Compile the start-up consumer against ``python``'s headers."""
    info = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig as s; print(s.get_paths()['include']); "
            "print(s.get_config_var('EXT_SUFFIX'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    include, suffix = info[0], info[1]
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "consumers" / "sitecustomize.py", dest)
    cc = sysconfig.get_config_var("CC") or "cc"
    subprocess.run(
        [
            *cc.split()[:1],
            "-shared",
            "-fPIC",
            "-O2",
            f"-I{include}",
            str(HERE / "consumers" / "startup_consumer.c"),
            "-o",
            str(dest / f"_startup_consumer{suffix}"),
        ],
        check=True,
    )


def existing_modules(python: Path, wanted: list[str]) -> list[str]:
    """Return the modules of ``wanted`` that this interpreter's tests have."""
    code = (
        "import importlib.util, sys\n"
        "for name in sys.argv[1:]:\n"
        "    if importlib.util.find_spec('test.' + name) is not None:\n"
        "        print(name)\n"
    )
    out = subprocess.run(
        [str(python), "-c", code, *wanted],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def parse_junit(path: Path) -> dict[str, list[str]]:
    """Per module: the failing test case ids, from regrtest's JUnit XML.

    regrtest names a case ``test.<module>[.<submodule>].<Class>.<test>``
    (older versions split it into ``classname`` and ``name``); the module
    is the first part after ``test.``.
    """
    result: dict[str, list[str]] = {}
    if not path.is_file():
        return result
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        if case.find("failure") is None and case.find("error") is None:
            continue
        full = ".".join(
            part
            for part in (case.get("classname", ""), case.get("name", ""))
            if part
        )
        parts = full.split(".")
        module = (
            parts[1] if parts[0] == "test" and len(parts) > 1 else parts[0]
        )
        result.setdefault(module, []).append(full)
    return result


def module_of(name: str) -> str:
    """``test_inspect.test_inspect`` (a split package) -> ``test_inspect``."""
    return name.split(".")[0]


#: Outcome words of regrtest's progress lines, worst last.
RANK = {"pass": 0, "skip": 1, "fail": 2, "crash": 3}


def run_regrtest(
    python: Path,
    modules: list[str],
    jobs: int,
    timeout: int,
    env: dict[str, str],
    log: Path,
) -> dict[str, dict[str, Any]]:
    """Run the modules; return per module its outcome and failed cases."""
    junit = log.with_suffix(".xml")
    junit.unlink(missing_ok=True)
    cmd = [
        str(python),
        "-m",
        "test",
        f"-j{jobs}",
        f"--timeout={timeout}",
        "--junit-xml",
        str(junit),
        *modules,
    ]
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    elapsed = time.monotonic() - started
    cases = parse_junit(junit)
    text = log.read_text(errors="replace")
    outcomes: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        # "0:00:12 load avg: 1.2 [ 3/27/1] test_dis failed (2 failures)"
        if "] test_" not in line:
            continue
        rest = line.split("] ", 1)[1]
        name, _, status = rest.partition(" ")
        name = module_of(name)
        if name not in modules:
            continue
        word = status.split(" ")[0] if status else ""
        if word in (
            "passed",
            "failed",
            "skipped",
            "crashed",
        ) or status.startswith(
            ("resource denied", "timed out", "worker non-zero exit", "skipped")
        ):
            kind = {
                "passed": "pass",
                "failed": "fail",
                "skipped": "skip",
                "crashed": "crash",
            }.get(word, "skip" if status.startswith("resource") else "fail")
            # A split package reports each submodule: keep the worst.
            previous = outcomes.get(name)
            if (
                previous is None
                or RANK[kind] >= RANK[str(previous["outcome"])]
            ):
                outcomes[name] = {"outcome": kind, "detail": status}
    for name in modules:
        entry = outcomes.setdefault(
            name, {"outcome": "fail", "detail": "no result in the log"}
        )
        entry["failed_cases"] = sorted(set(cases.get(name, [])))
    outcomes["__run__"] = {
        "returncode": proc.returncode,
        "seconds": round(elapsed, 1),
    }
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help="comma-separated settings (default: %(default)s)",
    )
    parser.add_argument(
        "--modules",
        default=",".join(MODULES),
        help="comma-separated test modules (default: the issue's list)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="regrtest -j (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=900,
        help="per-test timeout in s (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="results file (default: build/cpython-3.13/regrtest.json, "
        "which tox -e regen commits)",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        help="keep regrtest's output and per-build "
        "outcomes here (default: a temporary directory)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="take a build's outcomes from --logs when a "
        "previous run left them there",
    )
    parser.add_argument(
        "--side",
        choices=("both", "unpatched", "patched"),
        default="both",
        help="run only one build of each setting (with "
        "--logs; a later run with --reuse combines them)",
    )
    args = parser.parse_args(argv)
    settings = [s for s in args.settings.split(",") if s]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        return fail(
            f"unknown setting {unknown[0]!r}; choose from "
            f"{', '.join(SETTINGS)}"
        )
    wanted = [m for m in args.modules.split(",") if m]
    builder = runpy.run_path(str(HERE / "build.py"))
    pythons: dict[str, Path] = {}
    if args.side != "both" and args.logs is None:
        return fail("--side needs --logs, where the outcomes are kept")
    wanted_sides = {"both": (0, 1), "unpatched": (0,), "patched": (1,)}
    for setting in settings:
        for side in wanted_sides[args.side]:
            base_name, patched_name, _ = SETTINGS[setting]
            variant = patched_name if side else base_name
            python = builder["cached_build"](variant)
            if python is None:
                return fail(
                    f"the {variant} build is missing or out of date; run "
                    f"`python3 implementations/cpython-3.13/build.py "
                    f"--variant {variant}` first"
                )
            pythons[variant] = python
    logs = args.logs or Path(tempfile.mkdtemp(prefix="regrtest-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {
        "schema": 1,
        "generated_by": "implementations/cpython-3.13/run_cpython_tests.py",
        "cpython": "3.13.15",
        "machine": platform.machine(),
        "jobs": args.jobs,
        "timeout_s": args.timeout,
        "settings": {},
        "patched_only_failures": [],
    }
    patched_only: list[dict[str, str]] = []
    for setting in settings:
        base_variant, patched_variant, consumer = SETTINGS[setting]
        any_python = pythons.get(patched_variant) or pythons[base_variant]
        modules = existing_modules(any_python, wanted)
        per_build: dict[str, dict[str, dict[str, Any]]] = {}
        sides = {
            "both": (base_variant, patched_variant),
            "unpatched": (base_variant,),
            "patched": (patched_variant,),
        }[args.side]
        for variant in (base_variant, patched_variant):
            saved = logs / f"{setting}-{variant}.json"
            if variant not in sides or (args.reuse and saved.is_file()):
                if saved.is_file():
                    per_build[variant] = json.loads(saved.read_text())
                    # Re-read the failed cases, in case this script's
                    # parser changed since that run.
                    cases = parse_junit(saved.with_suffix(".xml"))
                    for name, entry in per_build[variant].items():
                        if name != "__run__":
                            entry["failed_cases"] = sorted(
                                set(cases.get(name, []))
                            )
                continue
            python = pythons[variant]
            env = dict(os.environ)
            env.pop("PYTHONPATH", None)
            if consumer:
                site_dir = logs / f"consumer-{variant}"
                build_consumer(python, site_dir)
                env["PYTHONPATH"] = str(site_dir)
            log = logs / f"{setting}-{variant}.log"
            print(
                f"[{setting}] {variant}: {len(modules)} modules (log: {log})",
                file=sys.stderr,
                flush=True,
            )
            per_build[variant] = run_regrtest(
                python, modules, args.jobs, args.timeout, env, log
            )
            saved.write_text(json.dumps(per_build[variant], indent=1))
        if len(per_build) < 2:
            continue  # the other side runs later (--side, --reuse)
        rows = {}
        for module in modules:
            base = per_build[base_variant][module]
            patched = per_build[patched_variant][module]
            new_cases = sorted(
                set(patched["failed_cases"]) - set(base["failed_cases"])
            )
            only = (
                patched["outcome"] in ("fail", "crash")
                and base["outcome"] not in ("fail", "crash")
            ) or bool(new_cases)
            rows[module] = {
                "unpatched": base["outcome"],
                "patched": patched["outcome"],
                "patched_only_cases": new_cases,
                "patched_only": only,
            }
            if only:
                patched_only.append(
                    {
                        "setting": setting,
                        "module": module,
                        "cases": ", ".join(new_cases),
                    }
                )
        settings_out = report["settings"]
        assert isinstance(settings_out, dict)
        settings_out[setting] = {
            "unpatched_variant": base_variant,
            "patched_variant": patched_variant,
            "consumer_from_startup": consumer,
            "runs": {v: per_build[v]["__run__"] for v in per_build},
            "modules": rows,
        }
    if args.side != "both":
        print(
            f"outcomes kept in {logs}; combine with --reuse", file=sys.stderr
        )
        return 0
    report["patched_only_failures"] = patched_only
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(
        f"wrote {args.output}; patched-only failures: {len(patched_only)}",
        file=sys.stderr,
    )
    for item in patched_only:
        print(
            f"  {item['setting']}: {item['module']} {item['cases']}",
            file=sys.stderr,
        )
    return 1 if patched_only else 0


if __name__ == "__main__":
    sys.exit(main())
