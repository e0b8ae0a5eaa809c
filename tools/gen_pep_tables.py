"""Regenerate the PEP's measured tables from the committed results.

Usage::

    python tools/gen_pep_tables.py            # rewrite the blocks
    python tools/gen_pep_tables.py --check    # exit 1 if they are stale

The ``.. BEGIN GENERATED: <name>`` blocks of ``pep/pep-9999.rst`` are
derived, never written by hand:

``cpython-deviations``
    Backwards Compatibility: requirement x CPython version, from the
    suite's reports ``results/cpython-3.X.json`` (and the patched builds'
    ``results/cpython-3.13-pep.json`` and ``cpython-3.13t-pep.json``),
    with the observed behaviour and
    the upstream issue of each deviation, taken from the expectations
    that the reports carry.
``benchmark-figures``
    Rationale: the costs of each design, from
    ``benchmarks/results/latest.json`` and the patched interpreter's
    ``implementations/cpython-3.13/results/measure.json``.
``like-for-like``
    Rationale: every design through the functions it exports, on
    CPython 3.13.15 patched and unpatched (default and free-threaded),
    from the ``like_for_like``, ``memory``, ``stdlib_census``,
    ``thread_scaling`` and ``pyperformance`` lists of
    ``benchmarks/results/latest.json`` (``tox -e bench-cpython``).

Standard library only; ``tox -e regen`` runs it, ``tox -e lint`` checks it.
``tox -e bench`` previews the blocks with its fresh figures in
``build/pep/pep-9999.rst`` (``--bench`` and ``--output``), leaving the
committed PEP alone.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pep_source import GENERATED_BEGIN_RE, GENERATED_END, PEP_PATH, REPO

DEFAULT_PEP = PEP_PATH
RESULTS = REPO / "results"
BENCH = REPO / "benchmarks" / "results" / "latest.json"
PATCHED = (
    REPO / "implementations" / "cpython-3.13" / "results" / "measure.json"
)
#: The patched builds' reports, as (file stem, column heading).
PATCHED_REPORTS = (
    ("cpython-3.13-pep", "3.13 +PEP"),
    ("cpython-3.13t-pep", "3.13t +PEP"),
)
#: Columns in order: stock releases, then the free-threaded build (3.13t).
VERSIONS = [f"3.{minor}" for minor in range(6, 16)] + ["3.13t"]
REGEN_COMMAND = "tox -e regen"

#: How an outcome reads in a cell of the deviations table.
CELL = {
    "pass": "pass",
    "fail": "**fails**",
    "xfail": "**fails**",
    "crashed": "**crashes**",
    "timeout": "**hangs**",
    "xpass": "pass",
    "not-applicable": "n/a",
    "error": "error",
    "untested": "untested",
}
DEVIATING = frozenset({"fail", "xfail", "crashed", "timeout", "error"})
#: The API's name prefixes: ``_PyEval_``/``_PyCode_`` up to 3.11,
#: ``PyUnstable_Eval_``/``PyUnstable_Code_`` from 3.12.
_API_PREFIX = re.compile(r"\b(?:_Py|PyUnstable_)(?=(?:Eval|Code)_)")

Json = dict[str, Any]


def _load(path: Path) -> Json:
    data: Json = json.loads(path.read_text(encoding="utf-8"))
    return data


def _by_id(report: Json) -> dict[str, Json]:
    return {entry["id"]: entry for entry in report["requirements"]}


def _ref(req_id: str) -> str:
    return f":ref:`{req_id} <{req_id.lower()}>`"


def _version_ranges(versions: Sequence[str]) -> str:
    """Spell consecutive versions as ranges: 3.6 - 3.9, 3.12."""
    positions = [VERSIONS.index(v) for v in versions]
    runs: list[list[int]] = []
    for pos in positions:
        # A build variant such as 3.13t never extends a run of releases.
        variant = VERSIONS[pos].endswith("t")
        if runs and pos == runs[-1][-1] + 1 and not variant:
            runs[-1].append(pos)
        else:
            runs.append([pos])
    spelled = []
    for run in runs:
        first, last = VERSIONS[run[0]], VERSIONS[run[-1]]
        spelled.append(first if first == last else f"{first} - {last}")
    return ", ".join(spelled)


def deviations_block(results: Path) -> list[str]:
    """Return the lines of the ``cpython-deviations`` block."""
    reports: dict[str, dict[str, Json]] = {}
    for version in VERSIONS:
        path = results / f"cpython-{version}.json"
        if path.is_file():
            reports[version] = _by_id(_load(path))
    if not reports:
        return [
            "*No CPython results are committed yet: run* ``tox -e py36`` "
            "*...* ``tox -e py315``, ``tox -e py313t``."
        ]
    patched = {
        heading: _by_id(_load(results / f"{stem}.json"))
        for stem, heading in PATCHED_REPORTS
        if (results / f"{stem}.json").is_file()
    }
    versions = list(reports)
    # A report lists the requirements in PEP order; _by_id keeps it.  The
    # longest report decides the order: a report made before a requirement
    # existed shows it as untested.
    longest: dict[str, Json] = max(reports.values(), key=len)
    order = list(longest)
    untested: Json = {"outcome": "untested"}
    for v in versions:
        for req_id in order:
            reports[v].setdefault(req_id, untested)
    rows = [
        req_id
        for req_id in order
        if any(reports[v][req_id]["outcome"] in DEVIATING for v in versions)
        or any(
            report.get(req_id, untested)["outcome"] in DEVIATING
            for report in patched.values()
        )
    ]
    total = len(order)
    lines = [
        f"Measured by the conformance suite against stock CPython "
        f"{_version_ranges(versions)} (``results/cpython-3.X.json``; "
        f"3.14 and 3.15 are Debian's builds, 3.13t the free-threaded build "
        f"of 3.13.15) and against the patched 3.13.15 of "
        f"`Reference Implementation`_ (columns *+PEP*, default and "
        f"free-threaded builds).  Of {total} requirements, the {len(rows)} "
        f"below fail in at least one column; every other one passes wherever "
        f"the adapter can exercise it.  *n/a* marks a capability that the "
        f"version lacks (index release and the inline flag everywhere; "
        f"constructor hooks before 3.12), which the suite "
        f"reports as not applicable rather than as a pass.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :class: coextra-deviations",
        "",
        "   * - Requirement",
    ]
    lines += [f"     - {v}" for v in versions]
    lines += [f"     - {heading}" for heading in patched]
    for req_id in rows:
        level = next(
            reports[v][req_id]["level"]
            for v in versions
            if "level" in reports[v][req_id]
        )
        lines.append(f"   * - {_ref(req_id)} ({level})")
        for v in versions:
            lines.append(f"     - {_cell(reports[v][req_id])}")
        for report in patched.values():
            entry = report.get(req_id, {"outcome": "untested"})
            lines.append(f"     - {_cell(entry)}")
    lines += [
        "",
        "What the suite observed, newest version first (the reasons of "
        "the expectations files ``implementations/cpython/expectations/"
        "3.X.toml``; before 3.12 the functions carry their ``_Py`` names):",
        "",
    ]
    for req_id in rows:
        lines += _observations(req_id, versions, reports)
    return lines


def _cell(entry: Json) -> str:
    """Spell one outcome; an expected failure shows how it failed."""
    outcome = entry["outcome"]
    if outcome == "xfail":
        how = (entry.get("expectation") or {}).get("outcome", "fail")
        outcome = how if how in ("crashed", "timeout") else "fail"
    return CELL[outcome]


def _observations(
    req_id: str, versions: Sequence[str], reports: dict[str, dict[str, Json]]
) -> list[str]:
    """One bullet per requirement: each distinct reason and its versions."""
    # Reasons that differ only in the spelling of the API (the ``_Py``
    # names before 3.12) are one observation; the newest text is shown.
    groups: dict[str, list[str]] = {}
    text_of: dict[str, str] = {}
    links: dict[str, str] = {}
    for v in versions:
        entry = reports[v][req_id]
        if entry["outcome"] not in DEVIATING:
            continue
        expectation = entry.get("expectation") or {}
        reason = expectation.get("reason") or "Fails; no reason recorded."
        key = _API_PREFIX.sub("", reason)
        groups.setdefault(key, []).append(v)
        text_of[key] = reason
        if expectation.get("link"):
            links[key] = expectation["link"]
    items = sorted(
        groups.items(), key=lambda item: -VERSIONS.index(item[1][-1])
    )
    out = [f"* {_ref(req_id)}:"]
    for key, where in items:
        text = _escape(text_of[key])
        link = links.get(key)
        if link:
            text += f" ({_link(link)})"
        out.append(f"  *{_version_ranges(where)}:* {text}")
    out.append("")
    return _wrap_bullet(out)


def _escape(text: str) -> str:
    """Make free text safe for reST: literal asterisks and backquotes."""
    text = text.replace("\\", "\\\\")
    return re.sub(r"([*`|_])", r"\\\1", text)


def _link(url: str) -> str:
    match = re.search(r"github\.com/python/cpython/(issues|pull)/(\d+)", url)
    label = f"gh-{match[2]}" if match else url
    return f"`{label} <{url}>`__"


def _wrap_bullet(lines: list[str]) -> list[str]:
    """Keep the bullet's continuation lines as one paragraph each."""
    head, *body = lines
    out = [head]
    for line in body:
        out.append(line if not line else "  " + line.strip())
        if line:
            out.append("")
    while out and not out[-1]:
        out.pop()
    out.append("")
    return out


def _case(bench: Json, name: str) -> Json:
    for case in bench["cases"]:
        if case["name"] == name:
            found: Json = case
            return found
    raise KeyError(f"{BENCH.name} has no case {name!r}")


def _instructions(bench: Json, name: str) -> float | None:
    for entry in bench.get("instructions", []):
        if entry["name"] == name:
            count: float = entry["count"]
            return count
    return None


def benchmark_block(bench_path: Path, patched_path: Path) -> list[str]:
    """Return the lines of the ``benchmark-figures`` block."""
    if not bench_path.is_file():
        return ["*No benchmark results yet: run* ``tox -e bench``."]
    bench = _load(bench_path)
    machine = bench["machine"]
    lines = [
        f"Measured by ``tox -e bench`` on {machine['cpu']} "
        f"({machine['cores']} cores), CPython {machine['python']}, "
        f"{machine['date'][:10]}.  Each C case runs its loop in C; the "
        f"ratio is the case's minimum over the raw array load's minimum "
        f"in the same run, and instructions per operation come from "
        f"callgrind.",
        "",
        ".. list-table:: Reading one value",
        "   :header-rows: 1",
        "",
        "   * - Design",
        "     - ns (min)",
        "     - ns (median)",
        "     - x raw load",
        "     - instructions",
    ]
    rows = [
        ("raw_load", "raw array load (the floor)"),
        (
            "reference_get_inline",
            "reference model, static inline reader, inline storage "
            "(not proposed as API)",
        ),
        ("reference_get_call", "reference model, exported Get, inline"),
        ("cpython_get", "stock CPython API (always-present pointer)"),
        ("c_hash_get", "side hash table in C"),
        (
            "reference_get_fallback",
            "reference model, static inline reader, out-of-line "
            "(not proposed as API)",
        ),
        ("py_dict_get", "Python ``dict`` keyed by code"),
        ("py_weakkeydict_get", "Python ``WeakKeyDictionary``"),
    ]
    for name, label in rows:
        case = _case(bench, name)
        count = _instructions(bench, name)
        lines += [
            f"   * - {label}",
            f"     - {case['ns_min']:.2f}",
            f"     - {case['ns_median']:.2f}",
            f"     - {case['ratio_to_raw_load']:.1f}",
            f"     - {count:.0f}" if count is not None else "     - --",
        ]
    inline = _case(bench, "reference_get_inline")["ns_min"]
    inline_chain = _case(bench, "reference_get_inline_chain")["ns_min"]
    raw_chain = _case(bench, "raw_load_chain")["ns_min"]
    hook = _case(bench, "hook_create_overhead")
    vs_stock = inline / _case(bench, "cpython_get")["ns_min"]
    vs_hash = _case(bench, "c_hash_get")["ns_min"] / inline
    lines += [
        "",
        f"These cases run the reference model (``reference_impl/``, not "
        f"CPython) on the host CPython {machine['python']}; the "
        f"like-for-like figures measure every design through what it "
        f"exports in one CPython.  The static inline reader "
        f"(``coextra_get_extra_fast``) is not part of the proposed API: "
        f"it takes {vs_stock:.2f} times as long as the stock API's "
        f"exported read and is {vs_hash:.1f} times "
        f"faster than the C hash table; when each read depends on the "
        f"previous one (a pointer chase, as in a JIT's dispatch) it is "
        f"{inline_chain / raw_chain:.2f} times the raw load.  A "
        f"constructor hook adds {hook['ns_min']:.1f} ns per code object, "
        f"{hook['percent_of_compile']:.3f} % of what ``compile()`` spends "
        f"per code object.",
        "",
    ]
    lines += _memory_lines(bench)
    if patched_path.is_file():
        lines += _patched_lines(_load(patched_path))
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _memory_lines(bench: Json) -> list[str]:
    memory = {
        (entry["implementation"], entry["consumers"]): entry["bytes_per_code"]
        for entry in bench["memory"]
        if "implementation" in entry
    }
    stock = sorted(
        {impl for impl, _ in memory if impl.startswith("cpython-")},
        key=lambda impl: [int(p) for p in impl.split("-")[1].split(".")],
    )
    lines = [
        ".. list-table:: Extra-storage bytes per code object, by consumers",
        "   :header-rows: 1",
        "",
        "   * - Implementation",
        "     - 0",
        "     - 1",
        "     - 4",
    ]
    for impl in ["reference", *stock]:
        lines.append(f"   * - {impl}")
        for consumers in (0, 1, 4):
            value = memory.get((impl, consumers))
            lines.append(f"     - {'--' if value is None else value}")
    stdlib = {
        (entry["design"], entry["consumers"]): entry
        for entry in bench["stdlib"]
    }
    labels = {
        "always_present_pointer": "always-present pointer (stock)",
        "side_hash_table": "side hash table",
        "flag_gated_trailing_field": "flag-gated trailing field (proposal)",
    }
    lines += [
        "",
        ".. list-table:: Compiling the whole standard library",
        "   :header-rows: 1",
        "",
        "   * - Design",
        "     - code objects",
        "     - extra bytes, no consumer",
        "     - extra bytes, one consumer",
    ]
    for design, label in labels.items():
        none = stdlib[(design, 0)]
        one = stdlib[(design, 1)]
        lines += [
            f"   * - {label}",
            f"     - {none['code_objects']:,}",
            f"     - {none['extra_bytes']:,}",
            f"     - {one['extra_bytes']:,}",
        ]
    lines.append("")
    return lines


def _patched_lines(patched: Json) -> list[str]:
    sizes = patched["small_code_sizeof"]
    stdlib = patched["stdlib_compile"]
    seconds = patched["compile_stdlib_seconds"]
    imports = patched["import_seconds"]
    base, pep = sizes["baseline"], sizes["patched"]
    lines = [
        f"In the patched CPython {patched['cpython']} (default build; same "
        f"source and "
        f"options, with and without the patch series), a small code object "
        f"takes {pep['no_consumer']} bytes instead of "
        f"{base['no_consumer']} while no consumer is active and "
        f"{pep['one_consumer']} with one; compiling the standard library "
        f"({stdlib['patched']['files']:,} files, "
        f"{stdlib['patched']['no_consumer']['code_objects']:,} code "
        f"objects) spends "
        f"{stdlib['patched']['no_consumer']['beyond_var_size']:,} bytes on "
        f"extra storage without a consumer.",
        "",
    ]
    counts = patched.get("instructions")
    if counts:
        lines += [
            f"Instructions executed (callgrind), patched over unpatched: "
            f"compiling one standard-library module in "
            f"{counts['stride']}: {counts['ratio_compile_none']:.4f} with no "
            f"consumer "
            f"and {counts['ratio_compile_one_consumer']:.4f} with one, "
            f"importing {len(counts['import_modules'])} modules "
            f"{counts['ratio_import']:.4f}.",
            "",
        ]
    load = patched["load_average_start"][0], patched["load_average_end"][0]
    lines += [
        f"Wall-clock, best of {patched['runs']} runs with the builds taking "
        f"turns, patched over unpatched: compiling the standard library "
        f"{seconds['ratio_patched_over_baseline_none']:.2f} with no "
        f"consumer and "
        f"{seconds['ratio_patched_over_baseline_one_consumer']:.2f} with "
        f"one, importing {len(imports['modules'])} modules "
        f"{imports['ratio_patched_over_baseline']:.2f}.  The machine is a "
        f"shared 2-core virtual machine (load average {min(load):.1f} to "
        f"{max(load):.1f} during the run), where such ratios move by up to "
        f"ten per cent from run to run in either direction; the "
        f"instruction counts above are the figures to compare.",
        "",
    ]
    return lines


#: Designs of the like-for-like lists, in table order, with their labels.
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
    bench = _load(bench_path) if bench_path.is_file() else {}
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
        ".. list-table:: Cost per operation, instructions (ns)",
        "   :header-rows: 1",
        "",
        "   * - Design",
        "     - Operation",
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
        ".. list-table:: Extra bytes per code object, by consumers "
        "(over the patched build's code object with no consumer)",
        "   :header-rows: 1",
        "",
        "   * - Design",
        "     - Build",
        "     - 0",
        "     - 1",
        "     - 4",
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
            ".. list-table:: Compiling the standard library of 3.13.15: "
            "extra bytes over all its code objects",
            "   :header-rows: 1",
            "",
            "   * - Design",
            "     - Build",
            "     - Code objects",
            "     - No consumer",
            "     - One consumer",
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
    bench = _load(bench_path) if bench_path.is_file() else {}
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


def blocks(bench: Path = BENCH) -> dict[str, Callable[[], list[str]]]:
    """Return the builder of each generated block, by block name."""
    return {
        "cpython-deviations": lambda: deviations_block(RESULTS),
        "benchmark-figures": lambda: benchmark_block(bench, PATCHED),
        "like-for-like": lambda: like_for_like_block(bench),
        "rationale-costs": lambda: rationale_costs_block(bench),
    }


def regenerate(text: str, bench: Path = BENCH) -> str:
    """Return ``text`` with every known generated block rebuilt."""
    builders = blocks(bench)
    lines = text.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        match = GENERATED_BEGIN_RE.match(line.rstrip())
        if match and match["name"] in builders:
            out += [
                line,
                "",
                f".. This block is GENERATED by tools/gen_pep_tables.py "
                f"from committed results; DO NOT EDIT, run {REGEN_COMMAND}.",
                "",
                *builders[match["name"]](),
                "",
            ]
            inside = True
            continue
        if inside:
            if line.rstrip() == GENERATED_END:
                out.append(line)
                inside = False
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the blocks, or check that they are current."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument(
        "--bench",
        type=Path,
        default=BENCH,
        help="Benchmark results to quote. Default: the committed "
        "benchmarks/results/latest.json",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="Write the PEP with its blocks rebuilt here instead of in "
        "place (how a test run previews them under build/)",
    )
    parser.add_argument("pep", nargs="?", type=Path, default=DEFAULT_PEP)
    args = parser.parse_args(argv)
    if not args.bench.is_file():
        print(
            f"error: {args.bench} does not exist: run tox -e bench first",
            file=sys.stderr,
        )
        return 2
    text = args.pep.read_text(encoding="utf-8")
    fresh = regenerate(text, args.bench)
    if args.check:
        if fresh != text:
            print(
                f"{args.pep.name}: generated tables are stale: run "
                f"{REGEN_COMMAND}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(fresh, encoding="utf-8")
        print(f"wrote {args.output}")
        return 0
    if fresh != text:
        args.pep.write_text(fresh, encoding="utf-8")
        print(f"updated {args.pep.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
