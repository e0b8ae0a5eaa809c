"""Like-for-like costs on CPython 3.13.15: every design through its exports.

The four builds of ``implementations/cpython-3.13/build.py`` (unpatched
and patched, with the GIL and free-threaded) are found in the shared
build cache; the harness of ``cpython313/`` is compiled against each and
measures, in one run:

* ``stock``: ``PyUnstable_Code_GetExtra``/``SetExtra`` of the unpatched
  build;
* ``pep``: the same functions of the patched build on a code object
  created after the consumer's index (inline slots);
* ``pep-late``: the same on a code object created before the index
  (out-of-line storage);
* ``watchers-table``: the unpatched build, a consumer that keeps its
  values in its own hash table and drops them from a code watcher's
  DESTROY event (``cpython313/code_table.h``), with no co_extra at all.

For each, get, set (a store into an empty slot; measured as a value in,
NULL back) and set-free (a store over a value; the free function runs),
in ns per operation (minimum over interleaved samples, rounds taken in
turn on every build) and in callgrind instructions per operation (the
difference of two runs of N1 and N2 operations, less the empty loop's
share).  Then bytes per code object with 0, 1 and 4 consumers, the
standard-library census, and on the free-threaded builds the read
throughput of 1 and 2 threads on one code object.

A build that is missing is skipped with a one-line reason; without any
of them, nothing here runs and ``run.py`` records why.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_build import CFLAGS, HERE

HARNESS = HERE / "cpython313"
PROBE = HARNESS / "probe.py"
BUILD_SCRIPT = "implementations/cpython-3.13/build.py"

#: variant -> (build label, patched?); the label is what the results say.
VARIANTS: dict[str, tuple[str, bool]] = {
    "baseline": ("3.13.15", False),
    "baseline-ft": ("3.13.15t", False),
    "patched": ("3.13.15", True),
    "patched-ft": ("3.13.15t", True),
}

#: harness case prefix -> design, on the unpatched and the patched build.
DESIGNS: dict[bool, dict[str, str]] = {
    False: {"api": "stock", "table": "watchers-table"},
    True: {"api": "pep", "api_late": "pep-late"},
}
OPS = {"get": "get", "set": "set", "set_free": "set-free"}

#: The project's targets for the patched build, measured through what each
#: design exports: each operation on an inline slot no more instructions
#: than stock's, a late consumer's read within twice stock's, two threads
#: reading one code object at least 1.8 times as fast as one.
TARGET_PEP_VS_STOCK = 1.0
TARGET_LATE_GET_VS_STOCK = 2.0
TARGET_THREAD_SCALING = 1.8


def cache_root() -> Path:
    """Return the build cache, as ``build.py`` computes it."""
    env = os.environ.get("COEXTRA_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "coextra"
    return base / "cpython-3.13"


@dataclass(frozen=True)
class Build:
    """One finished CPython 3.13.15 build of the cache."""

    variant: str
    prefix: Path
    #: The build's stamp (a hash of source, patches and options), read
    #: when the build was found: a rebuild may remove it mid-run.
    build_key: str = ""

    @property
    def label(self) -> str:
        """``3.13.15`` or ``3.13.15t``."""
        return VARIANTS[self.variant][0]

    @property
    def patched(self) -> bool:
        """Whether the PEP's patch series is applied."""
        return VARIANTS[self.variant][1]

    @property
    def free_threaded(self) -> bool:
        """Whether the build is free-threaded (``--disable-gil``)."""
        return self.variant.endswith("-ft")

    @property
    def abi(self) -> str:
        """``3.13`` or ``3.13t``: the suffix of its library and headers."""
        return "3.13t" if self.free_threaded else "3.13"

    @property
    def python(self) -> Path:
        """The installed interpreter."""
        return self.prefix / "bin" / f"python{self.abi}"

    @property
    def stdlib(self) -> Path:
        """The installed standard library."""
        return self.prefix / "lib" / f"python{self.abi}"

    @property
    def pointer_field(self) -> bool:
        """Whether ``PyCodeObject`` has the ``co_extra`` pointer."""
        header = self.prefix / "include" / f"python{self.abi}" / "cpython"
        text = (header / "code.h").read_text(encoding="utf-8")
        return "void *co_extra;" in text


def find_builds() -> tuple[dict[str, Build], dict[str, str]]:
    """Finished builds by variant, and a one-line reason per missing one."""
    found: dict[str, Build] = {}
    missing: dict[str, str] = {}
    root = cache_root()
    for variant in VARIANTS:
        stamp = root / variant / "stamp"
        try:
            key = stamp.read_text(encoding="utf-8").strip()[:16]
        except OSError:
            key = ""
        build = Build(variant, root / variant / "install", key)
        if not key:
            missing[variant] = (
                f"no finished {variant} build (run python3 {BUILD_SCRIPT} "
                f"--variant {variant})"
            )
        elif not build.python.is_file():
            missing[variant] = f"{build.python} is missing"
        else:
            found[variant] = build
    return found, missing


def _run(cmd: Sequence[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd[:4])}\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc.stdout


def build_harness(build: Build, outdir: Path) -> Path:
    """Compile the harness against ``build``; return the executable.

    harness.c becomes a shared object and main.c an executable linked
    with the whole static libpython and its symbols exported, so calls
    from the harness into CPython go through the PLT as an extension
    module's do.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    include = build.prefix / "include" / f"python{build.abi}"
    library = build.prefix / "lib" / f"libpython{build.abi}.a"
    cc = os.environ.get("CC", "gcc")
    shared = outdir / "liblfl.so"
    _run(
        [
            cc,
            *CFLAGS,
            "-fPIC",
            "-shared",
            f"-I{include}",
            f"-I{HARNESS}",
            str(HARNESS / "harness.c"),
            "-o",
            str(shared),
        ]
    )
    binary = outdir / f"lfl-{build.variant}"
    _run(
        [
            cc,
            *CFLAGS,
            str(HARNESS / "main.c"),
            "-o",
            str(binary),
            f"-L{outdir}",
            "-llfl",
            "-Wl,-rpath,$ORIGIN",
            "-Wl,--whole-archive",
            str(library),
            "-Wl,--no-whole-archive",
            "-Xlinker",
            "-export-dynamic",
            "-ldl",
            "-lm",
        ]
    )
    return binary


@dataclass(frozen=True)
class Harness:
    """A harness binary and the build it embeds."""

    build: Build
    binary: Path

    def env(self) -> dict[str, str]:
        """Return the environment the embedded interpreter needs."""
        env = dict(os.environ)
        env["PYTHONHOME"] = str(self.build.prefix)
        # The same instructions in every run: no hash randomisation.
        env["PYTHONHASHSEED"] = "0"
        env.pop("PYTHONPATH", None)
        return env

    def json(self, *args: str) -> Any:
        """Run a harness command and parse the JSON it prints."""
        return json.loads(_run([str(self.binary), *args], env=self.env()))


class LikeForLike:
    """Builds the harnesses, then measures each part on demand."""

    def __init__(
        self,
        builds: dict[str, Build],
        workdir: Path,
        log: Callable[[str], None],
    ) -> None:
        """Compile a harness per build into ``workdir``."""
        self.log = log
        self.harnesses: dict[str, Harness] = {}
        for variant, build in builds.items():
            log(f"building the like-for-like harness against {variant}")
            binary = build_harness(build, workdir / variant)
            harness = Harness(build, binary)
            # Fails loudly if the watchers-table consumer is wrong.
            harness.json("selftest")
            info = harness.json("info")
            if info["patched"] != build.patched:
                raise RuntimeError(
                    f"{variant}: the build says patched={info['patched']}; "
                    f"rebuild it with python3 {BUILD_SCRIPT} --variant "
                    f"{variant}"
                )
            self.harnesses[variant] = harness
        self.samples: dict[str, dict[str, list[float]]] = {
            v: {} for v in self.harnesses
        }

    # -- timing ---------------------------------------------------------

    def time_round(self, sample_us: float, repeats: int) -> None:
        """One timing round on every build, one build after the other."""
        for variant, harness in self.harnesses.items():
            self.log(f"like-for-like timing round on {variant}")
            data = harness.json("time", str(sample_us), str(repeats))
            for case, values in data["cases"].items():
                self.samples[variant].setdefault(case, []).extend(values)

    # -- instructions ---------------------------------------------------

    def instructions(
        self, n: tuple[int, int], quick: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Count instructions per operation of every case and build.

        When quick, only the get cases are counted.
        """
        jobs = [
            (variant, case, size)
            for variant, harness in self.harnesses.items()
            for case in ["empty", *self._cases(harness.build)]
            if not quick or case == "empty" or case.endswith("_get")
            for size in n
        ]
        self.log(f"callgrind: {len(jobs)} like-for-like runs")
        with tempfile.TemporaryDirectory(prefix="coextra-lfl-cg-") as tmp:
            with ThreadPoolExecutor(max_workers=2) as pool:
                counts = list(
                    pool.map(
                        lambda job: self._count(
                            job[0], job[1], job[2], Path(tmp)
                        ),
                        jobs,
                    )
                )
        raw: dict[str, dict[str, Any]] = {v: {} for v in self.harnesses}
        for i in range(0, len(jobs), 2):
            variant, case, _ = jobs[i]
            (low, _), (high, printed) = counts[i], counts[i + 1]
            raw[variant][case] = {
                "per_iteration": (high - low)
                / (n[1] - n[0])
                * printed["ops_per_iteration"],
                "ops_per_iteration": printed["ops_per_iteration"],
                "total": [low, high],
            }
        out: dict[str, dict[str, Any]] = {v: {} for v in self.harnesses}
        for variant, cases in raw.items():
            empty = cases["empty"]["per_iteration"]
            for case, row in cases.items():
                ops = row["ops_per_iteration"]
                out[variant][case] = {
                    "instructions": (row["per_iteration"] - empty) / ops,
                    "loop_instructions": empty / ops,
                    "n": list(n),
                    "total": row["total"],
                }
        return out

    def _cases(self, build: Build) -> list[str]:
        return [
            f"{prefix}_{op}" for prefix in DESIGNS[build.patched] for op in OPS
        ]

    def _count(
        self, variant: str, case: str, n: int, tmp: Path
    ) -> tuple[int, Any]:
        harness = self.harnesses[variant]
        out = tmp / f"callgrind.{variant}.{case}.{n}"
        printed = json.loads(
            _run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--instr-atstart=no",
                    f"--callgrind-out-file={out}",
                    str(harness.binary),
                    "count",
                    case,
                    str(n),
                ],
                env=harness.env(),
            )
        )
        if not printed["instrumented_region"]:
            raise RuntimeError(
                "the harness was built without valgrind/callgrind.h: "
                "install valgrind (apt-get install valgrind)"
            )
        with open(out) as f:
            for line in f:
                if line.startswith("totals:"):
                    return int(line.split()[1]), printed
        raise RuntimeError(f"no totals line in {out}")

    # -- threads --------------------------------------------------------

    def threads(self, reads: int, repeats: int) -> list[dict[str, Any]]:
        """Time reads of one code object by 1 and 2 threads (free-threaded)."""
        rows = []
        for variant, harness in self.harnesses.items():
            build = harness.build
            if not build.free_threaded:
                continue
            self.log(f"read scaling with 1 and 2 threads on {variant}")
            data = harness.json("threads", str(reads), str(repeats))
            for prefix, design in DESIGNS[build.patched].items():
                figures = data["designs"][prefix]
                rows.append(
                    {
                        "build": build.label,
                        "design": design,
                        "reads_per_s_1": figures["reads_per_s_1"],
                        "reads_per_s_2": figures["reads_per_s_2"],
                        "ratio": figures["ratio"],
                        "ratio_cpu": figures["ratio_cpu"],
                    }
                )
        return rows

    # -- memory ---------------------------------------------------------

    def probe(self, variant: str, *args: str) -> Any:
        """Run probe.py inside one build."""
        return self.harnesses[variant].json("run", str(PROBE), *args)


def _stdlib_files(stdlib: Path, quick: bool) -> list[str]:
    """List the build's standard library, tests included.

    When quick, a fixed sample of about 40 files.
    """
    found = []
    for folder, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(
            d for d in dirs if d not in ("site-packages", "__pycache__")
        )
        found += [
            os.path.join(folder, f) for f in sorted(files) if f.endswith(".py")
        ]
    return found[:: max(1, len(found) // 40)] if quick else found


def _labels(lfl: LikeForLike) -> dict[str, dict[bool, str]]:
    """Map build label -> patched? -> variant, for the builds present."""
    out: dict[str, dict[bool, str]] = {}
    for variant, harness in lfl.harnesses.items():
        build = harness.build
        out.setdefault(build.label, {})[build.patched] = variant
    return out


#: What the byte counts are measured over, by whether a patched build
#: was measured (see memory_rows).
BASIS = {
    True: "the patched build's code object with no consumer (its layout "
    "has no extra storage at all)",
    False: "the unpatched build's code object less its co_extra pointer "
    "(no patched build measured)",
}


def memory_rows(
    lfl: LikeForLike, census: dict[str, dict[int, Any]]
) -> list[dict[str, Any]]:
    """Bytes per code object: stock, pep and watchers-table, k consumers.

    Bytes are counted over a code object with no extra storage at all:
    the patched build's with no consumer when that build was measured
    (removing the pointer can save more than 8 bytes, because of the
    padding around it), otherwise the unpatched build's less its
    ``co_extra`` pointer.  The watchers-table design has no pointer and
    pays, per consumer, its table's bytes per entry at the size the
    standard-library census has.
    """
    rows: list[dict[str, Any]] = []
    for label, by_patch in _labels(lfl).items():
        if False not in by_patch:
            continue  # stock and the table need the unpatched build
        base_variant = by_patch[False]
        base_build = lfl.harnesses[base_variant].build
        base = lfl.probe(base_variant, "memory")["rows"]
        patched = (
            lfl.probe(by_patch[True], "memory")["rows"]
            if True in by_patch
            else []
        )
        if patched:
            bare = patched[0]["sizeof_created"]
        else:
            pointer = 8 if base_build.pointer_field else 0
            bare = base[0]["sizeof_created"] - pointer
        per_entry = None
        if base_variant in census and 1 in census[base_variant]:
            one = census[base_variant][1]
            per_entry = one["table_bytes"] / one["code_objects"]
        measured = [("stock", row) for row in base] + [
            ("pep", row) for row in patched
        ]
        for design, row in measured:
            rows.append(
                {
                    "build": label,
                    "design": design,
                    "consumers": row["consumers"],
                    "bytes_per_code": row["sizeof_stored"] - bare,
                    "sizeof_code": row["sizeof_stored"],
                    "inline": row["inline"],
                    "note": f"over {BASIS[bool(patched)]}",
                }
            )
        if per_entry is not None:
            rows += [
                {
                    "build": label,
                    "design": "watchers-table",
                    "consumers": row["consumers"],
                    "bytes_per_code": round(row["consumers"] * per_entry),
                    "note": "each consumer's table at the standard "
                    "library's size (load <= 1/2, 16-byte entries); no "
                    "co_extra pointer in this design",
                }
                for row in base
            ]
    return rows


def run_census(lfl: LikeForLike, quick: bool) -> dict[str, dict[int, Any]]:
    """Compile the standard library in every build, 0 and 1 consumer."""
    jobs = [
        (variant, consumers)
        for variant in lfl.harnesses
        for consumers in (0, 1)
    ]

    # Every build of a label compiles the same files: the unpatched
    # build's standard library (the patch series adds tests to Lib).
    sources: dict[str, Path] = {}
    for harness in lfl.harnesses.values():
        build = harness.build
        if not build.patched or build.label not in sources:
            sources[build.label] = build.stdlib

    def one(job: tuple[str, int]) -> Any:
        variant, consumers = job
        files = _stdlib_files(
            sources[lfl.harnesses[variant].build.label], quick
        )
        lfl.log(
            f"census: {len(files)} stdlib files on {variant}, "
            f"{consumers} consumer(s)"
        )
        return lfl.probe(variant, "census", str(consumers), *files)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, jobs))
    out: dict[str, dict[int, Any]] = {}
    for (variant, consumers), result in zip(jobs, results, strict=True):
        out.setdefault(variant, {})[consumers] = result
    return out


def census_rows(
    lfl: LikeForLike, census: dict[str, dict[int, Any]]
) -> list[dict[str, Any]]:
    """Price the census per design: extra bytes over bare code objects.

    The basis is the same as memory_rows': the patched build with no
    consumer when it was measured.
    """
    rows: list[dict[str, Any]] = []
    for label, by_patch in _labels(lfl).items():
        if False not in by_patch:
            continue
        base_variant = by_patch[False]
        base = census[base_variant]
        codes = base[0]["code_objects"]
        pep = census[by_patch[True]] if True in by_patch else None
        if pep is not None:
            bare = pep[0]["sizeof_total"]
        else:
            build = lfl.harnesses[base_variant].build
            pointer = 8 if build.pointer_field else 0
            bare = base[0]["sizeof_total"] - pointer * codes
        extra = [
            ("stock", 0, base[0]["sizeof_total"] - bare),
            ("stock", 1, base[1]["sizeof_total"] - bare),
            ("watchers-table", 0, 0),
            ("watchers-table", 1, base[1]["table_bytes"]),
        ]
        if pep is not None:
            for k in (0, 1):
                if pep[k]["code_objects"] != codes:
                    raise RuntimeError(
                        f"{label}: the patched build compiled "
                        f"{pep[k]['code_objects']} code objects, the "
                        f"unpatched {codes}: the sources differ"
                    )
                extra.append(("pep", k, pep[k]["sizeof_total"] - bare))
        rows += [
            {
                "build": label,
                "design": design,
                "consumers": k,
                "code_objects": codes,
                "extra_bytes": value,
                "files": base[0]["files"],
            }
            for design, k, value in extra
        ]
    return rows


def like_for_like_rows(
    lfl: LikeForLike, counts: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Return the ``like_for_like`` list: a row per build, design and op."""
    rows = []
    for variant, harness in lfl.harnesses.items():
        build = harness.build
        samples = lfl.samples[variant]
        empty_ns = min(samples["empty"])
        for prefix, design in DESIGNS[build.patched].items():
            for op_case, op in OPS.items():
                case = f"{prefix}_{op_case}"
                values = samples[case]
                count = counts.get(variant, {}).get(case)
                rows.append(
                    {
                        "build": build.label,
                        "design": design,
                        "op": op,
                        "ns": min(values),
                        "ns_median": statistics.median(values),
                        "ns_empty_loop": empty_ns,
                        "instructions": (
                            None if count is None else count["instructions"]
                        ),
                        "loop_instructions": (
                            None
                            if count is None
                            else count["loop_instructions"]
                        ),
                        "samples": len(values),
                        "variant": variant,
                    }
                )
    return rows


def targets(
    rows: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    threads: list[dict[str, Any]],
) -> dict[str, Any]:
    """Compare with TARGET_*, for every build where both sides exist."""
    by = {(r["build"], r["design"], r["op"]): r for r in rows}
    out: dict[str, Any] = {}

    def ratio(key: str, num: Any, den: Any, target: float, note: str) -> None:
        if num is None or den is None or not den:
            return
        measured = num / den
        out[key] = {
            "target": target,
            "measured": measured,
            "met": measured <= target,
            "note": note,
        }

    builds = sorted({r["build"] for r in rows})
    for b in builds:
        for op in OPS.values():
            stock = by.get((b, "stock", op))
            pep = by.get((b, "pep", op))
            if (
                stock
                and pep
                and None
                not in (
                    stock["instructions"],
                    pep["instructions"],
                )
            ):
                ratio(
                    f"pep_{op}_vs_stock_instructions_{b}",
                    pep["instructions"],
                    stock["instructions"],
                    TARGET_PEP_VS_STOCK,
                    f"{pep['instructions']:.1f} vs "
                    f"{stock['instructions']:.1f} instructions per {op}",
                )
        stock = by.get((b, "stock", "get"))
        late = by.get((b, "pep-late", "get"))
        if (
            stock
            and late
            and None
            not in (
                stock["instructions"],
                late["instructions"],
            )
        ):
            ratio(
                f"pep_late_get_vs_stock_instructions_{b}",
                late["instructions"],
                stock["instructions"],
                TARGET_LATE_GET_VS_STOCK,
                f"{late['instructions']:.1f} vs "
                f"{stock['instructions']:.1f} instructions per get",
            )
    mem = {(m["build"], m["design"], m["consumers"]): m for m in memory}
    for b in builds:
        pep0 = mem.get((b, "pep", 0))
        if pep0 is not None:
            out[f"pep_bytes_without_consumer_{b}"] = {
                "target": 0,
                "measured": pep0["bytes_per_code"],
                "met": pep0["bytes_per_code"] == 0,
            }
        pep1, stock1 = mem.get((b, "pep", 1)), mem.get((b, "stock", 1))
        if pep1 is not None and stock1 is not None:
            out[f"pep_bytes_one_consumer_vs_stock_{b}"] = {
                "target": stock1["bytes_per_code"],
                "measured": pep1["bytes_per_code"],
                "met": pep1["bytes_per_code"] <= stock1["bytes_per_code"],
                "note": "bytes per code object; the target is stock's",
            }
    for row in threads:
        if row["design"] == "pep":
            out[f"pep_read_scaling_2_threads_{row['build']}"] = {
                "target": TARGET_THREAD_SCALING,
                "measured": row["ratio"],
                "met": row["ratio"] >= TARGET_THREAD_SCALING,
                "note": "reads per second with 2 threads over 1 thread, "
                "one code object (at least the target)",
            }
    return out
