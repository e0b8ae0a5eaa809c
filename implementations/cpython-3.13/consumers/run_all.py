#!/usr/bin/env python3
"""Run the real consumers against the cached patched 3.13.15 builds.

Usage::

    python3 implementations/cpython-3.13/consumers/run_all.py \
        [--variants patched,patched-ft] [--output FILE]

For each variant (it must be built: ``build.py --variant V``):

* ``callcount``: the call-counter extension (``callcount.c``) compiled
  from source against the build's headers, run end to end
  (``callcount.py``);
* ``perf_trampoline``: the interpreter's own perf trampoline (``-X perf``)
  keeps its per-code trampoline in the extra storage; a hot function must
  appear in the ``/tmp/perf-PID.map`` file it writes, with and without a
  second consumer holding an index from start-up;
* ``out_of_process_line``: ``read_line_out_of_process.py`` reads the
  running interpreter's current line with the offsets of
  ``_Py_DebugOffsets``;
* ``layout``: ``check_layout.py`` against the unpatched build of the
  same configuration, when that build is cached;
* ``valgrind_release_regression`` (default build only): test_code's
  regression test of a code object outliving a sub-interpreter whose
  indices were released, under valgrind memcheck.

Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FOLDER = HERE.parent
#: Under build/, like every run's output; ``tox -e regen`` commits it as
#: ``results/consumers.json`` of the cpython-3.13 folder.
DEFAULT_OUTPUT = (
    FOLDER.parent.parent / "build" / "cpython-3.13" / "consumers.json"
)
UNPATCHED = {"patched": "baseline", "patched-ft": "baseline-ft"}

PERF_WORKLOAD = """
import os, sys
def hot_function_for_perf(n):
    return sum(i * i for i in range(n))
for _ in range(200):
    hot_function_for_perf(1000)
print(os.getpid())
"""


def run_json(cmd: list[str]) -> tuple[int, object]:
    """Run a checker that prints a JSON document; return (status, doc)."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, timeout=600
    )
    try:
        start = proc.stdout.index("{")
        doc: object = json.loads(proc.stdout[start:])
    except ValueError:
        doc = {"error": (proc.stderr or proc.stdout).strip()[-2000:]}
    return proc.returncode, doc


def perf_trampoline(
    python: Path, consumer_dir: Path | None
) -> dict[str, object]:
    """Run a hot function under -X perf; find it in the perf map."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if consumer_dir is not None:
        env["PYTHONPATH"] = str(consumer_dir)
    proc = subprocess.run(
        [str(python), "-X", "perf", "-c", PERF_WORKLOAD],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr.strip()[-2000:]}
    pid = proc.stdout.split()[-1]
    perf_map = Path(f"/tmp/perf-{pid}.map")
    text = perf_map.read_text() if perf_map.is_file() else ""
    perf_map.unlink(missing_ok=True)
    entries = [ln for ln in text.splitlines() if ln.strip()]
    hot = [ln for ln in entries if "hot_function_for_perf" in ln]
    return {
        "ok": bool(hot),
        "map_entries": len(entries),
        "hot_function_entries": len(hot),
        "second_consumer_from_startup": consumer_dir is not None,
    }


def release_regression_under_valgrind(python: Path) -> dict[str, object]:
    """Run test_code's release/outlive regression test under memcheck.

    The test ends a sub-interpreter whose indices were all released while
    one of its code objects (with inline storage) lives on, then destroys
    that code object; an earlier version of the patch wrote into the
    freed interpreter there.
    """
    if shutil.which("valgrind") is None:
        return {"ok": False, "error": "valgrind is not installed"}
    env = dict(os.environ, PYTHONMALLOC="malloc")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [
            "valgrind",
            "--error-exitcode=99",
            "--errors-for-leak-kinds=none",
            str(python),
            "-m",
            "test",
            "test_code",
            "-m",
            "test_code_outlives_interpreter_after_release",
            "-v",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=1800,
    )
    summary = [
        ln.split("== ", 1)[-1]
        for ln in proc.stderr.splitlines()
        if "ERROR SUMMARY" in ln
    ]
    ran = (
        "test_code_outlives_interpreter_after_release" in proc.stdout
        and " ok" in proc.stdout
    )
    return {
        "ok": proc.returncode == 0 and ran,
        "returncode": proc.returncode,
        "test_ran_and_passed": ran,
        "error_summary": summary[-1] if summary else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every consumer on every variant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="patched,patched-ft")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    builder = runpy.run_path(str(FOLDER / "build.py"))
    tests = runpy.run_path(str(FOLDER / "run_cpython_tests.py"))
    report: dict[str, object] = {
        "schema": 1,
        "generated_by": "implementations/cpython-3.13/consumers/run_all.py",
        "cpython": "3.13.15",
    }
    failed = []
    for variant in [v for v in args.variants.split(",") if v]:
        if variant not in UNPATCHED:
            print(
                f"run_all.py: unknown variant {variant!r}; use patched or "
                "patched-ft",
                file=sys.stderr,
            )
            return 2
        python = builder["cached_build"](variant)
        if python is None:
            print(
                f"run_all.py: the {variant} build is missing or out of "
                "date; run `python3 implementations/cpython-3.13/build.py "
                f"--variant {variant}` first",
                file=sys.stderr,
            )
            return 2
        results: dict[str, Any] = {}
        status, doc = run_json(
            [
                sys.executable,
                str(HERE / "callcount.py"),
                "--python",
                str(python),
            ]
        )
        results["callcount"] = doc
        if status:
            failed.append(f"{variant}: callcount")
        with tempfile.TemporaryDirectory() as tmp:
            site_dir = Path(tmp) / "site"
            tests["build_consumer"](python, site_dir)
            perf = {
                "alone": perf_trampoline(python, None),
                "with_startup_consumer": perf_trampoline(python, site_dir),
            }
        results["perf_trampoline"] = perf
        if not all(p["ok"] for p in perf.values()):
            failed.append(f"{variant}: perf_trampoline")
        status, doc = run_json(
            [
                sys.executable,
                str(FOLDER / "read_line_out_of_process.py"),
                "--python",
                str(python),
            ]
        )
        results["out_of_process_line"] = doc
        if status:
            failed.append(f"{variant}: out_of_process_line")
        baseline = builder["cached_build"](UNPATCHED[variant])
        if baseline is not None:
            status, doc = run_json(
                [
                    sys.executable,
                    str(FOLDER / "check_layout.py"),
                    "--baseline",
                    str(baseline),
                    "--patched",
                    str(python),
                ]
            )
            results["layout"] = doc
            if status:
                failed.append(f"{variant}: layout")
        if variant == "patched":
            results["valgrind_release_regression"] = (
                release_regression_under_valgrind(python)
            )
            if not results["valgrind_release_regression"]["ok"]:
                failed.append(f"{variant}: valgrind_release_regression")
        report[variant] = results
    report["failed"] = failed
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.output}; failed: {failed or 'none'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
