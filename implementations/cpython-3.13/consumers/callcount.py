#!/usr/bin/env python3
"""Build the call-counter consumer against a patched build and run it.

Usage::

    python3 implementations/cpython-3.13/consumers/callcount.py \
        --python PATH/TO/patched/python3.13[t] [--json OUT]

``callcount.c`` is compiled from source with the interpreter's own
headers (``sysconfig``), imported by that interpreter, and driven through
a workload whose call counts are known: a function built before the
consumer started (its counter lives out of line), one built after (inline,
given its counter by the constructor hook), four threads calling the
latter at once (on a free-threaded build they really run in parallel, and
CompareExchange decides which counter wins), then release of the index,
which must free every counter the consumer created.  Exit status 0 when
every figure matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKLOAD = """\
import json, sys, threading
sys.path.insert(0, sys.argv[1])
import callcount

def before(x):
    return x + 1

index = callcount.enable()
ns = {}
exec(compile("def after(x):\\n    return x * 2\\n", "<after>", "exec"), ns)
after = ns["after"]
for i in range(1000):
    before(i)
for i in range(500):
    after(i)

def work():
    for i in range(1000):
        after(i)

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
result = {
    "index": index,
    "before_calls": callcount.count(before.__code__),
    "after_calls": callcount.count(after.__code__),
    "before_inline": callcount.has_inline(before.__code__),
    "after_inline": callcount.has_inline(after.__code__),
    "after_co_flags_shows_bit": bool(after.__code__.co_flags & 0x20000000),
    "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
}
created, freed = callcount.disable()
result["counters_created"] = created
result["counters_freed_after_release"] = freed
print(json.dumps(result))
"""

EXPECTED = {
    "before_calls": 1000,
    "after_calls": 4500,
    "before_inline": False,
    "after_inline": True,
    "after_co_flags_shows_bit": False,
}


def main(argv: list[str] | None = None) -> int:
    """Compile, run, compare."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True, type=Path)
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    if not args.python.is_file():
        print(
            f"callcount.py: {args.python} does not exist; build it with "
            "build.py first",
            file=sys.stderr,
        )
        return 2
    info = subprocess.run(
        [
            str(args.python),
            "-c",
            "import sysconfig as s; print(s.get_paths()['include']); "
            "print(s.get_config_var('EXT_SUFFIX'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    with tempfile.TemporaryDirectory() as tmp:
        cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
        compiled = subprocess.run(
            [
                cc,
                "-shared",
                "-fPIC",
                "-O2",
                "-Wall",
                f"-I{info[0]}",
                str(HERE / "callcount.c"),
                "-o",
                str(Path(tmp) / f"callcount{info[1]}"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if compiled.returncode != 0:
            print(compiled.stderr, file=sys.stderr)
            print(
                "callcount.py: callcount.c does not compile against "
                f"{args.python}'s headers (is it a PEP 9999 build?)",
                file=sys.stderr,
            )
            return 1
        run = subprocess.run(
            [str(args.python), "-I", "-c", WORKLOAD, tmp],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    if run.returncode != 0:
        print(run.stderr, file=sys.stderr)
        print(
            f"callcount.py: the workload exited {run.returncode}",
            file=sys.stderr,
        )
        return 1
    result = json.loads(run.stdout.strip().splitlines()[-1])
    mismatches = {
        k: (result.get(k), v)
        for k, v in EXPECTED.items()
        if result.get(k) != v
    }
    if result["counters_created"] != result["counters_freed_after_release"]:
        mismatches["counters_freed_after_release"] = (
            result["counters_freed_after_release"],
            result["counters_created"],
        )
    result["python"] = args.python.name
    result["ok"] = not mismatches
    result["mismatches"] = {
        k: {"got": g, "expected": e} for k, (g, e) in mismatches.items()
    }
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
