"""The ``benchmark-figures`` block: the costs of each design.

From ``benchmarks/results/latest.json`` (``tox -e bench``) and the
patched interpreter's ``implementations/cpython-3.13/results/measure.json``.
"""

from __future__ import annotations

from pathlib import Path

from pep_tables import Json, list_table, load_json


def _case(bench: Json, name: str) -> Json:
    for case in bench["cases"]:
        if case["name"] == name:
            found: Json = case
            return found
    raise KeyError(f"the benchmark results have no case {name!r}")


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
    bench = load_json(bench_path)
    machine = bench["machine"]
    lines = [
        f"Measured by ``tox -e bench`` on {machine['cpu']} "
        f"({machine['cores']} cores), CPython {machine['python']}, "
        f"{machine['date'][:10]}.  Each C case runs its loop in C; the "
        f"ratio is the case's minimum over the raw array load's minimum "
        f"in the same run, and instructions per operation come from "
        f"callgrind.",
        "",
        *list_table(
            "Reading one value",
            [
                "Design",
                "ns (min)",
                "ns (median)",
                "x raw load",
                "instructions",
            ],
        ),
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
        lines += _patched_lines(load_json(patched_path))
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
        *list_table(
            "Extra-storage bytes per code object, by consumers",
            ["Implementation", "0", "1", "4"],
        ),
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
        *list_table(
            "Compiling the whole standard library",
            [
                "Design",
                "code objects",
                "extra bytes, no consumer",
                "extra bytes, one consumer",
            ],
        ),
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
