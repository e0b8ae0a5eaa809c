"""Mutation testing of the reference implementation's C with the suite.

Usage::

    python tools/mutation/run.py [--sample N] [--seed S] [--jobs J]
        [--timeout SECONDS] [--output build/mutation/score.json]

universalmutator (PyPI) writes every mutant of each file of the
reference (``reference_impl/src``: every ``.c`` file but ``table.c``,
the C ABI's export, and ``internal.h``, which the files share).  The
mutants of all files are shuffled together with a fixed seed and
examined in that order: the files a mutant touches (its own, or every
``.c`` file for a header) are compiled to object files with the flags of
the reference build; one that does not compile is dropped, and so is
one whose object files equal the original's (the compiler proved it
equivalent).  The first ``--sample`` mutants that remain are a uniform
random sample of the compiled, non-identical mutants.  Each is linked
with the other original objects and ``table.c`` into a shared library
and the conformance suite runs against it through the C-ABI loader
(``--coextra-impl=PATH``), stopping at the first failure.  A mutant is
killed when the run fails, crashes or times out.

Survivors are looked up in ``tools/mutation/survivors.json``, keyed by
file, line and change, which says
for each known survivor either why it is equivalent (kind
``equivalent``: no caller that keeps the ABI's contract can tell it from
the original) or why the suite cannot catch it (kind ``not-caught``, for
example a data race only a thread sanitizer sees).  Equivalent mutants
leave the denominator.  The score is killed / (sample - equivalent) with
its 95 % Wilson interval, written to ``--output``
(build/mutation/score.json; ``tox -e regen`` commits it as
tools/mutation/score.json, which the docs show).

``--recheck FILE`` runs the suite again on the mutants of an earlier
results file that were not killed (after tests were added for them),
keeping its sample, and writes the updated score.  ``--rejudge FILE``
runs nothing: it applies the current survivors.json to the mutants of
an earlier results file that the suite did not kill (after survivors
were annotated) and writes the updated score.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "reference_impl" / "src"
ABI = ROOT / "conformance" / "abi"
#: The C ABI's export, linked unmutated with every mutant.
TABLE = "table.c"
#: Headers whose mutants rebuild every .c file.  coextra.h, the public
#: interface, is left alone: its structures are the ABI's.
HEADERS = ("internal.h",)
SURVIVORS = Path(__file__).with_name("survivors.json")

#: Flags of the object files compared and linked: those of the reference
#: build without -Werror (a mutant that only warns is still a mutant)
#: and without debug information (which records line numbers).
CFLAGS = ["-std=c11", "-O2", "-g0", "-fPIC", "-pthread"]
CFLAGS += ["-frandom-seed=coextra", "-I", str(SRC), "-I", str(ABI)]

#: Kinds of survivors.json entries that leave the score's denominator:
#: equivalent mutants, and mutants of the harness (the object model and
#: the ABI's observation functions, not the PEP's API), which the strict
#: score counts as not caught.
EXCLUDED = ("equivalent", "harness")

#: The suite run against one mutant: stop at the first failure, no
#: report, no cache, derandomized Hypothesis (the plugin's default).
SUITE_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]


def library_sources() -> list[str]:
    """Return the names of the reference's .c files, table.c excepted."""
    return [p.name for p in sorted(SRC.glob("*.c")) if p.name != TABLE]


def targets() -> list[str]:
    """Return the names of the files whose mutants are examined."""
    return library_sources() + list(HEADERS)


#: A comment closing a line of code, such as a requirement tag:
#: ``return -1; /* R-ALLOC-2 */``.
_TRAILING_COMMENT = re.compile(r"^(?P<code>[^/]*?\S)\s*/\*.*?\*/\s*$")


def mutable_text(name: str) -> str:
    """Return file ``name`` with the comments that close code lines cut.

    universalmutator passes over every line holding ``/*``, and the
    lines that implement a requirement carry its ID in such a comment;
    without it they are mutated like any other.  Comments do not change
    the object file, and line numbers stay the same.
    """
    lines = (SRC / name).read_text(encoding="utf-8").splitlines()
    cut = []
    for line in lines:
        match = _TRAILING_COMMENT.match(line)
        cut.append(match["code"] if match else line)
    return "\n".join(cut) + "\n"


@dataclass
class Mutant:
    """One mutant: where it changes the source and what became of it."""

    name: str
    file: str
    line: int
    original: str
    mutated: str
    #: "killed", "survived", "equivalent" or the reason it was dropped.
    status: str = ""
    #: How the suite ended: "failed", "crashed (signal N)", "timeout".
    detail: str = ""
    reason: str = ""

    @property
    def key(self) -> str:
        """Identify the change independently of line numbers."""
        return f"{self.original.strip()} => {self.mutated.strip()}"


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def generate(work: Path) -> list[tuple[str, Path]]:
    """Write every mutant of every target into ``work/mutants``.

    Returns (target name, mutant file) pairs.  universalmutator names a
    mutant after its file's stem (``drain.mutant.12.c``), so names are
    unique across targets.
    """
    mutate = shutil.which("mutate")
    if mutate is None:
        fail(
            "universalmutator's `mutate` is not on PATH: "
            "pip install universalmutator"
        )
    out = work / "mutants"
    out.mkdir()
    mutants: list[tuple[str, Path]] = []
    for name in targets():
        source = work / name
        source.write_text(mutable_text(name), encoding="utf-8")
        subprocess.run(
            [mutate, str(source), "c", "--noCheck", "--mutantDir", str(out)],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        stem, suffix = name.rsplit(".", 1)
        found = sorted(out.glob(f"{stem}.mutant.*.{suffix}"), key=_number)
        mutants += [(name, path) for path in found]
    if not mutants:
        fail("universalmutator wrote no mutant")
    return mutants


def _number(path: Path) -> int:
    return int(path.name.split(".")[2])


def describe(name: str, path: Path, original_lines: list[str]) -> Mutant:
    """Find the line a mutant of file ``name`` changes."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, (old, new) in enumerate(
        zip(original_lines, lines, strict=False), start=1
    ):
        if old != new:
            return Mutant(path.name, name, n, old, new)
    # A deleted line at the end, or a change in line count.
    n = min(len(lines), len(original_lines))
    old = original_lines[n] if n < len(original_lines) else ""
    new = lines[n] if n < len(lines) else ""
    return Mutant(path.name, name, n + 1, old, new)


def compile_object(source: Path, out: Path) -> bool:
    """Compile ``source``, in a folder holding every source, to ``out``.

    A syntax check comes first: it is several times faster than code
    generation and rejects most mutants that do not compile.
    """
    for step in (["-fsyntax-only"], ["-c", "-o", str(out)]):
        done = subprocess.run(
            ["gcc", *CFLAGS, *step, source.name],
            cwd=source.parent,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            return False
    return True


def copy_sources(folder: Path) -> None:
    """Copy the unmutated sources (every .c and .h) into ``folder``.

    The files that are mutated are copied as they are mutated, with the
    comments closing code lines cut, so that the same text is compiled.
    """
    mutated = set(targets())
    for path in [*SRC.glob("*.c"), *SRC.glob("*.h")]:
        if path.name in mutated:
            text = mutable_text(path.name)
            (folder / path.name).write_text(text, encoding="utf-8")
        else:
            shutil.copy(path, folder / path.name)


def affected(name: str) -> list[str]:
    """Return the .c files a mutant of file ``name`` changes."""
    return library_sources() if name in HEADERS else [name]


def object_name(source: str) -> str:
    """Return the object file name of a .c file."""
    return source[: -len(".c")] + ".o"


Objects = dict[str, bytes]


def examine(
    name: str, mutant: Path, slot: Path, original: Objects
) -> tuple[str, Objects]:
    """Compile one mutant of ``name`` in ``slot``.

    Returns the status and the object files that differ from the
    original ones, by name.
    """
    copy_sources(slot)
    shutil.copy(mutant, slot / name)
    changed: Objects = {}
    for source in affected(name):
        obj = slot / object_name(source)
        obj.unlink(missing_ok=True)
        if not compile_object(slot / source, obj):
            return "does-not-compile", {}
        data = obj.read_bytes()
        if data != original[obj.name]:
            changed[obj.name] = data
    if not changed:
        return "same-object", {}
    return "valid", changed


def build_base(base: Path) -> Objects:
    """Compile the unmutated library and table.c in ``base``.

    Returns the library's object files by name; table.o stays in
    ``base``.
    """
    copy_sources(base)
    original: Objects = {}
    for source in library_sources():
        obj = base / object_name(source)
        if not compile_object(base / source, obj):
            fail(f"the unmutated {source} does not compile")
        original[obj.name] = obj.read_bytes()
    subprocess.run(
        ["gcc", *CFLAGS, "-c", TABLE, "-o", "table.o"], cwd=base, check=True
    )
    return original


def link_library(
    folder: Path, base: Path, changed: Objects, out: Path
) -> None:
    """Link ``out`` from the changed objects and the other base ones."""
    objects = []
    for source in library_sources():
        obj = object_name(source)
        if obj in changed:
            (folder / obj).write_bytes(changed[obj])
            objects.append(folder / obj)
        else:
            objects.append(base / obj)
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-pthread",
            *map(str, objects),
            str(base / "table.o"),
            "-o",
            str(out),
        ],
        check=True,
    )


def run_suite(
    library: Path, python: str, timeout: float, cwd: Path
) -> tuple[bool, str]:
    """Run the suite against ``library``; return (killed, how)."""
    env = dict(os.environ)
    env.pop("COEXTRA_IMPL", None)
    command = [
        python,
        "-m",
        "pytest",
        "--pyargs",
        "coextra_conformance",
        f"--coextra-impl={library}",
        *SUITE_ARGS,
    ]
    # Its own session, so that a timeout can kill the whole group: the
    # suite runs isolated tests in child processes, which a mutant can
    # make hang and which would otherwise outlive the run.
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return True, "timeout"
    done = subprocess.CompletedProcess(
        command, proc.returncode, stdout, stderr
    )
    if done.returncode == 0:
        return False, "passed"
    if done.returncode < 0:
        return True, f"crashed (signal {-done.returncode})"
    if done.returncode in (1, 3):
        return True, "failed"
    # 2 interrupted, 4 usage error, 5 no tests: the run itself is wrong.
    tail = (done.stdout + done.stderr)[-2000:]
    raise RuntimeError(
        f"suite could not run against {library} "
        f"(exit {done.returncode}):\n{tail}"
    )


def wilson(killed: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Return the 95 % Wilson score interval of killed / total."""
    if total == 0:
        return (0.0, 1.0)
    p = killed / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return (max(0.0, centre - half / denom), min(1.0, centre + half / denom))


def _entry(
    annotated: dict[str, dict[str, str]], mutant: Mutant
) -> dict[str, str]:
    return annotated.get(f"{mutant.file}:{mutant.line}: {mutant.key}", {})


def _kind(annotated: dict[str, dict[str, str]], mutant: Mutant) -> str:
    return _entry(annotated, mutant).get("kind", "")


def _note(annotated: dict[str, dict[str, str]], mutant: Mutant) -> str:
    return _entry(annotated, mutant).get("reason", "")


def verdict(
    annotated: dict[str, dict[str, str]], mutant: Mutant, killed: bool
) -> None:
    """Set the mutant's status and reason once the suite has run."""
    mutant.reason = ""
    if killed:
        mutant.status = "killed"
    elif _kind(annotated, mutant) in EXCLUDED:
        mutant.status = _kind(annotated, mutant)
        mutant.reason = _note(annotated, mutant)
    else:
        mutant.status = "survived"
        mutant.reason = _note(annotated, mutant)


def load_survivors() -> dict[str, dict[str, str]]:
    """Return the annotated survivors, keyed by "file:line: change"."""
    data = json.loads(SURVIVORS.read_text(encoding="utf-8"))
    return {
        f"{entry['file']}:{entry['line']}: {entry['change']}": entry
        for entry in data["survivors"]
    }


def main(argv: list[str] | None = None) -> int:
    """Run the mutation analysis; return 0 when the score holds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sample",
        type=int,
        default=100,
        help="compiled, non-identical mutants to run. Default: %(default)s",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=8523,
        help="shuffle seed. Default: %(default)s",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="parallel compilations and suite runs. Default: %(default)s",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds before a suite run counts as a hang (killed). "
        "Default: %(default)s",
    )
    parser.add_argument(
        "--minimum",
        type=float,
        default=0.95,
        help="score below which the run fails. Default: %(default)s",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON results file. Default: print only",
    )
    parser.add_argument(
        "--recheck",
        type=Path,
        default=None,
        help="results file of an earlier run: run its survivors again",
    )
    parser.add_argument(
        "--rejudge",
        type=Path,
        default=None,
        help="results file of an earlier run: apply survivors.json to its "
        "survivors again, without running the suite",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated mutant names to run (no sampling)",
    )
    args = parser.parse_args(argv)
    if args.sample < 1 or args.jobs < 1:
        fail("--sample and --jobs must be at least 1")
    if shutil.which("gcc") is None:
        fail("gcc not found: apt-get install gcc")
    annotated = load_survivors()
    started = time.monotonic()
    if args.rejudge is not None:
        return _rejudge(args, annotated, started)
    work = Path(tempfile.mkdtemp(prefix="coextra-mutation-"))
    try:
        if args.recheck is not None:
            return _recheck(args, annotated, work, started)
        return _run(args, annotated, work, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(
    args: argparse.Namespace,
    annotated: dict[str, dict[str, str]],
    work: Path,
    started: float,
) -> int:
    mutants = generate(work)
    original_lines = {
        name: mutable_text(name).splitlines() for name in targets()
    }
    base = work / "base"
    base.mkdir()
    original = build_base(base)

    order = list(mutants)
    random.Random(args.seed).shuffle(order)
    if args.only:
        wanted = set(args.only.split(","))
        order = [m for m in order if m[1].name in wanted]
    slots = [work / f"slot{i}" for i in range(args.jobs)]
    for slot in slots:
        slot.mkdir()

    dropped = {"does-not-compile": 0, "same-object": 0}
    chosen: list[tuple[Mutant, Objects]] = []
    position = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        # Compile in batches of `jobs`, in shuffled order, until the
        # sample is full: the sample is then the first valid mutants of
        # a uniform shuffle.
        while len(chosen) < args.sample and position < len(order):
            batch = order[position : position + args.jobs]
            position += len(batch)
            results = list(
                pool.map(
                    lambda pair: examine(
                        pair[0][0], pair[0][1], pair[1], original
                    ),
                    zip(batch, slots, strict=True),
                )
            )
            for (name, path), (status, data) in zip(
                batch, results, strict=True
            ):
                if status != "valid":
                    dropped[status] += 1
                elif len(chosen) < args.sample:
                    mutant = describe(name, path, original_lines[name])
                    chosen.append((mutant, data))
    examined = position
    compiled_at = time.monotonic()
    print(
        f"{len(mutants)} mutants; examined {examined}: "
        f"{dropped['does-not-compile']} do not compile, "
        f"{dropped['same-object']} compile to the original object, "
        f"{len(chosen)} sampled ({compiled_at - started:.0f} s)",
        flush=True,
    )

    # The unmutated library must pass, or every mutant would be killed.
    libs = work / "libs"
    libs.mkdir()
    base_lib = libs / "base.so"
    link_library(libs, base, {}, base_lib)
    killed, how = run_suite(base_lib, sys.executable, args.timeout, work)
    if killed:
        fail(
            f"the suite does not pass against the unmodified reference: {how}"
        )

    # Mutants compiling to the same object are the same program: the
    # suite runs once per distinct object.
    by_object: dict[str, list[Mutant]] = {}
    objects: dict[str, Objects] = {}
    for mutant, data in chosen:
        digest = _digest(data)
        by_object.setdefault(digest, []).append(mutant)
        objects[digest] = data

    def judge(digest: str) -> tuple[str, bool, str]:
        folder = libs / digest[:16]
        folder.mkdir()
        lib = folder / "libmutant.so"
        link_library(folder, base, objects[digest], lib)
        killed, how = run_suite(lib, sys.executable, args.timeout, folder)
        shutil.rmtree(folder, ignore_errors=True)
        return digest, killed, how

    done_count = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for digest, was_killed, how in pool.map(judge, list(by_object)):
            for mutant in by_object[digest]:
                mutant.detail = how
                verdict(annotated, mutant, was_killed)
                if mutant.status == "survived":
                    print(
                        f"  survived: {mutant.name} "
                        f"{mutant.file}:{mutant.line}: {mutant.key}",
                        flush=True,
                    )
            done_count += 1
            if done_count % 25 == 0:
                print(
                    f"  {done_count}/{len(by_object)} objects run", flush=True
                )

    sample = [m for m, _ in chosen]
    summary = {
        "mutants_generated": len(mutants),
        "examined": examined,
        "dropped_does_not_compile": dropped["does-not-compile"],
        "dropped_same_object": dropped["same-object"],
        "seed": args.seed,
        "sample": len(sample),
        "distinct_objects": len(by_object),
    }
    return _finish(args, sample, summary, started)


def _finish(
    args: argparse.Namespace,
    sample: list[Mutant],
    summary: dict[str, object],
    started: float,
) -> int:
    """Print and write the score; return 0 when it reaches --minimum."""
    killed_n = sum(m.status == "killed" for m in sample)
    equivalent = sum(m.status == "equivalent" for m in sample)
    harness = sum(m.status == "harness" for m in sample)
    survivors = [m for m in sample if m.status == "survived"]
    scored = len(sample) - equivalent - harness
    score = killed_n / scored if scored else 0.0
    low, high = wilson(killed_n, scored)
    strict = killed_n / (scored + harness) if scored + harness else 0.0
    elapsed = time.monotonic() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = children.ru_utime + children.ru_stime
    for m in survivors:
        print(f"SURVIVED {m.name} {m.file}:{m.line}: {m.key}")
    print(
        f"mutation score {score:.1%} (95 % CI {low:.1%} to {high:.1%}): "
        f"{killed_n} killed of {scored} non-equivalent "
        f"({equivalent} equivalent, {harness} in the harness, "
        f"{len(survivors)} not caught; {strict:.1%} counting the harness) "
        f"in {elapsed / 60:.1f} min, {cpu / 60:.1f} CPU min"
    )
    if args.output is not None:
        result = {
            "comment": (
                "GENERATED by tools/mutation/run.py (tox -e mutation); "
                "do not edit: rerun it to regenerate."
            ),
            "tool": "universalmutator",
            "target": [f"reference_impl/src/{name}" for name in targets()],
            **summary,
            "killed": killed_n,
            "equivalent": equivalent,
            "harness": harness,
            "survived": len(survivors),
            "strict_score": round(strict, 4),
            "score": round(score, 4),
            "ci95": [round(low, 4), round(high, 4)],
            "minutes": round(elapsed / 60, 1),
            "cpu_minutes": round(cpu / 60, 1),
            "mutants": [asdict(m) for m in sample],
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n", "utf-8")
    return 0 if score >= args.minimum else 1


def _previous_summary(previous: dict[str, object]) -> dict[str, object]:
    """Return the sampling figures of an earlier results file."""
    keys = (
        "mutants_generated",
        "examined",
        "dropped_does_not_compile",
        "dropped_same_object",
        "seed",
        "sample",
        "distinct_objects",
    )
    return {key: previous[key] for key in keys}


def _rejudge(
    args: argparse.Namespace,
    annotated: dict[str, dict[str, str]],
    started: float,
) -> int:
    """Apply survivors.json to the unkilled mutants of an earlier run.

    Whether the suite killed a mutant is that run's measurement and is
    kept; only the annotation of the ones it did not kill (equivalent,
    harness or not caught) is read again.
    """
    try:
        previous = json.loads(args.rejudge.read_text(encoding="utf-8"))
        sample = [Mutant(**entry) for entry in previous["mutants"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(
            f"{args.rejudge}: cannot read its mutants ({exc}): "
            "regenerate it with tox -e mutation"
        )
    for mutant in sample:
        if mutant.status != "killed":
            verdict(annotated, mutant, False)
    summary = _previous_summary(previous)
    summary["rejudged"] = sum(m.status != "killed" for m in sample)
    summary["first_run_minutes"] = previous.get("minutes")
    return _finish(args, sample, summary, started)


def _recheck(
    args: argparse.Namespace,
    annotated: dict[str, dict[str, str]],
    work: Path,
    started: float,
) -> int:
    """Run the suite again on the survivors of an earlier results file.

    Tests added since that run can only kill more mutants; the killed
    ones are kept as they were, the others are run again and judged
    anew (killed, equivalent per survivors.json, or survived).
    """
    previous = json.loads(args.recheck.read_text(encoding="utf-8"))
    sample = [Mutant(**entry) for entry in previous["mutants"]]
    generate(work)
    files = work / "mutants"
    base = work / "base"
    base.mkdir()
    original = build_base(base)
    link_library(base, base, {}, base / "base.so")
    killed, how = run_suite(
        base / "base.so", sys.executable, args.timeout, base
    )
    if killed:
        fail(
            f"the suite does not pass against the unmodified reference: {how}"
        )
    again = [m for m in sample if m.status != "killed"]

    def judge(mutant: Mutant) -> None:
        folder = work / mutant.name
        folder.mkdir()
        status, changed = examine(
            mutant.file, files / mutant.name, folder, original
        )
        if status != "valid":
            fail(f"{mutant.name} {status}: is {mutant.file} changed?")
        link_library(folder, base, changed, folder / "lib.so")
        was_killed, detail = run_suite(
            folder / "lib.so", sys.executable, args.timeout, folder
        )
        mutant.detail = f"rechecked: {detail}"
        verdict(annotated, mutant, was_killed)

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(judge, again))
    summary = _previous_summary(previous)
    summary["rechecked"] = len(again)
    summary["first_run_minutes"] = previous.get("minutes")
    return _finish(args, sample, summary, started)


def _digest(changed: Objects) -> str:
    """Identify a mutant's program by its changed object files."""
    digest = hashlib.sha256()
    for name in sorted(changed):
        digest.update(name.encode() + b"\0")
        digest.update(changed[name])
    return digest.hexdigest()


if __name__ == "__main__":
    sys.exit(main())
