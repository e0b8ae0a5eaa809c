"""The ``like-for-like`` and ``rationale-costs`` blocks.

Every design through the functions it exports, on CPython 3.13.15
patched and unpatched (default and free-threaded), from the
``like_for_like``, ``memory``, ``stdlib_census``, ``thread_scaling`` and
``pyperformance`` lists of ``benchmarks/results/latest.json``
(``tox -e bench-cpython``).
"""

from __future__ import annotations

from pathlib import Path

from pep_tables import Json, list_table, load_json

LFL_DESIGNS = {
    "stock": "stock (``co_extra`` pointer)",
    "pep": "PEP, inline slot",
    "pep-late": "PEP, late consumer (out-of-line)",
    "watchers-table": "consumer's hash table + code watcher",
}
LFL_OPS = {"get": "get", "set": "set", "set-free": "set over a value"}
LFL_BUILDS = {"3.13.15": "default build", "3.13.15t": "free-threaded"}


def _fmt(value: float | None, digits: int) -> str:
    return "--" if value is None else f"{value:.{digits}f}"


def like_for_like_block(bench_path: Path) -> list[str]:
    """Return the lines of the ``like-for-like`` block."""
    bench = load_json(bench_path) if bench_path.is_file() else {}
    rows = bench.get("like_for_like") or []
    if not rows:
        return [
            "*Not measured yet: run* ``tox -e bench-cpython`` *(it builds "
            "CPython 3.13.15 with and without the patch series).*"
        ]
    machine = bench["machine"]
    date = bench.get("like_for_like_details", {}).get("date", machine["date"])
    builds = [b for b in LFL_BUILDS if any(r["build"] == b for r in rows)]
    by = {(r["build"], r["design"], r["op"]): r for r in rows}
    lines = [
        f"Measured by ``tox -e bench-cpython`` on {machine['cpu']} "
        f"({machine['cores']} cores), {date[:10]}: CPython "
        f"3.13.15 built from one source with and without the patch "
        f"series, with the GIL and free-threaded.  One C harness "
        f"(``benchmarks/cpython313/``), compiled against each build, "
        f"calls what each design exports through the PLT, as an "
        f"extension module does: ``PyUnstable_Code_GetExtra`` / "
        f"``SetExtra`` of the unpatched build (*stock*) and of the "
        f"patched build, on a code object created after the consumer's "
        f"index (*PEP*) or before it (*late consumer*); and, on the "
        f"unpatched build, a consumer that keeps its values in its own "
        f"open-addressing hash table keyed by the code object and drops "
        f"them from a code watcher's ``PY_CODE_EVENT_DESTROY`` (no "
        f"``co_extra`` at all).  *set* stores into an empty slot; *set "
        f"over a value* replaces one, and the free function runs.  "
        f"Instructions per operation come from callgrind, less the empty "
        f"loop's; ns is the least time per operation over interleaved "
        f"samples, loop included.",
        "",
        *list_table(
            "Cost per operation, instructions (ns)",
            ["Design", "Operation"],
        ),
    ]
    lines += [f"     - {b} ({LFL_BUILDS[b]})" for b in builds]
    for design, label in LFL_DESIGNS.items():
        for op, op_label in LFL_OPS.items():
            cells = [by.get((b, design, op)) for b in builds]
            if not any(cells):
                continue
            lines += [f"   * - {label}", f"     - {op_label}"]
            for cell in cells:
                if cell is None:
                    lines.append("     - --")
                    continue
                lines.append(
                    f"     - {_fmt(cell['instructions'], 0)} "
                    f"({cell['ns']:.2f} ns)"
                )
    lines.append("")
    lines += _lfl_memory_lines(bench, builds)
    lines += _lfl_other_lines(bench, builds)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _lfl_memory_lines(bench: Json, builds: list[str]) -> list[str]:
    memory = {
        (m["build"], m["design"], m["consumers"]): m["bytes_per_code"]
        for m in bench.get("memory", [])
        if "build" in m
    }
    if not memory:
        return []
    lines = [
        *list_table(
            "Extra bytes per code object, by consumers (over the patched "
            "build's code object with no consumer)",
            ["Design", "Build", "0", "1", "4"],
        ),
    ]
    for design in ("stock", "pep", "watchers-table"):
        for b in builds:
            values = [memory.get((b, design, k)) for k in (0, 1, 4)]
            if all(v is None for v in values):
                continue
            lines += [f"   * - {LFL_DESIGNS[design]}", f"     - {b}"]
            lines += [f"     - {'--' if v is None else v}" for v in values]
    lines.append("")
    census = {
        (c["build"], c["design"], c["consumers"]): c
        for c in bench.get("stdlib_census", [])
    }
    if census:
        lines += [
            *list_table(
                "Compiling the standard library of 3.13.15: extra bytes over "
                "all its code objects",
                [
                    "Design",
                    "Build",
                    "Code objects",
                    "No consumer",
                    "One consumer",
                ],
            ),
        ]
        for design in ("stock", "pep", "watchers-table"):
            for b in builds:
                none = census.get((b, design, 0))
                one = census.get((b, design, 1))
                if none is None or one is None:
                    continue
                lines += [
                    f"   * - {LFL_DESIGNS[design]}",
                    f"     - {b}",
                    f"     - {none['code_objects']:,}",
                    f"     - {none['extra_bytes']:,}",
                    f"     - {one['extra_bytes']:,}",
                ]
        lines.append("")
    return lines


def _lfl_other_lines(bench: Json, builds: list[str]) -> list[str]:
    lines = []
    threads = bench.get("thread_scaling") or []
    if threads:
        parts = [
            f"{LFL_DESIGNS[t['design']]} {t['ratio']:.2f}" for t in threads
        ]
        lines += [
            "Reads of one code object on the free-threaded build, two "
            "threads over one (reads per second, 2.0 is perfect "
            "scaling): " + "; ".join(parts) + ".",
            "",
        ]
    perf = bench.get("pyperformance") or []
    if perf:
        details = bench.get("pyperformance_details", {})
        parts = []
        for row in perf:
            lo, hi = row["spread"]
            consumer = "one consumer" if row["consumer"] else "no consumer"
            parts.append(
                f"{row['build']}, {consumer}: {row['geomean']:.3f} "
                f"[{lo:.3f}, {hi:.3f}] (A/A {row['aa_geomean']:.3f})"
            )
        count = len(details.get("benchmarks", [])) or perf[0]["benchmarks"]
        lines += [
            f"pyperformance, {count} benchmarks, patched over unpatched, "
            f"geometric mean with its 95 % interval; the A/A figure "
            f"runs the unpatched build against itself and shows the "
            f"noise of this shared machine: " + "; ".join(parts) + ".",
            "",
        ]
    counted = bench.get("pyperformance_instructions") or []
    if counted:
        parts = []
        for row in counted:
            lo, hi = row["spread"]
            consumer = "one consumer" if row["consumer"] else "no consumer"
            parts.append(
                f"{row['build']}, {consumer}: {row['geomean']:.4f} "
                f"[{lo:.4f}, {hi:.4f}]"
            )
        lines += [
            "The same benchmarks counted in instructions (callgrind, one "
            "value of each benchmark in one process, hash seed fixed), "
            "which this machine's load does not move: "
            + "; ".join(parts)
            + ".",
            "",
        ]
    return lines


#: How the rationale names each design in prose.
COST_DESIGNS = {
    "stock": "stock CPython",
    "pep": "this PEP, inline slot",
    "pep-late": "this PEP, out-of-line slot of a late consumer",
    "watchers-table": "a consumer's own hash table and a code watcher",
}


def _count_phrase(rows: dict[tuple[str, str], Json], op: str) -> str:
    """Return "21 (stock CPython), 29 (this PEP, ...)" for one operation."""
    parts = []
    for design, label in COST_DESIGNS.items():
        count = rows.get((design, op), {}).get("instructions")
        if count is not None:
            parts.append(f"{count:.0f} ({label})")
    return ", ".join(parts) or "not counted in this run"


def rationale_costs_block(bench_path: Path) -> list[str]:
    """Return the lines of the ``rationale-costs`` block.

    The headline figures of the like-for-like comparison, in prose, for
    the default build: what a consumer pays per operation and per code
    object through what each design exports.
    """
    bench = load_json(bench_path) if bench_path.is_file() else {}
    build = next(iter(LFL_BUILDS))
    rows = {
        (r["design"], r["op"]): r
        for r in bench.get("like_for_like") or []
        if r["build"] == build
    }
    if not rows:
        return [
            "*Not measured yet: run* ``tox -e bench-cpython`` *(it builds "
            "CPython 3.13.15 with and without the patch series).*"
        ]
    lines = [
        f"Measured through the functions each design exports, in CPython "
        f"{build} built from one source with and without this PEP "
        f"(default build; callgrind instructions per operation, the "
        f"empty loop's subtracted).  Reading a slot: "
        f"{_count_phrase(rows, 'get')}.  Storing into an empty slot: "
        f"{_count_phrase(rows, 'set')}.  Replacing a value, its free "
        f"function included: {_count_phrase(rows, 'set-free')}."
    ]
    memory = {
        (m["design"], m["consumers"]): m["bytes_per_code"]
        for m in bench.get("memory", [])
        if m.get("build") == build
    }
    sizes = []
    for design in ("stock", "pep", "watchers-table"):
        values = [memory.get((design, k)) for k in (0, 1, 4)]
        if any(v is not None for v in values):
            figures = "/".join("--" if v is None else str(v) for v in values)
            sizes.append(f"{figures} ({COST_DESIGNS[design]})")
    if sizes:
        lines[0] += (
            "  Extra bytes per code object with 0/1/4 consumers: "
            + ", ".join(sizes)
            + "."
        )
    lines[0] += (
        "  `Alternatives weighed`_ gives every figure, with times and "
        "the free-threaded build."
    )
    return lines
