"""What each storage design costs in memory.

Extra bytes per code object for the reference and stock CPython, and
every design priced on the host's whole standard library: the
always-present pointer, a side hash table, the flag-gated trailing
field.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import bench_build
import bench_memory
import bench_stdlib
from run_support import Settings, log, run_json

#: Bytes of one entry of a pointer-keyed side table: key and value.
SIDE_TABLE_ENTRY = 16


def memory(binary: Path, settings: Settings) -> list[dict[str, Any]]:
    """Extra bytes per code object, reference and stock CPython."""
    log("memory per code object")
    data = run_json([str(binary), "memory"])
    rows: list[dict[str, Any]] = [
        {
            "implementation": "reference",
            "consumers": row["consumers"],
            "bytes_per_code": row["extra_bytes"],
            "sizeof_code": row["sizeof"],
        }
        for row in data["reference"]
    ]
    minors = settings.stock_minors or (sys.version_info.minor,)
    for minor in minors:
        python = bench_build.find_python(minor)
        if python is None:
            log(f"python3.{minor} not found: no stock memory figures")
            continue
        rows += bench_memory.stock_memory(python)
    return rows


def stdlib_designs(
    host: bench_build.PythonInfo,
    settings: Settings,
    mem: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Price every storage design on the host's standard library."""
    paths = bench_stdlib.stdlib_files(host.stdlib)
    if settings.quick:
        paths = bench_stdlib.typical_sample(host.stdlib, 10)
    log(f"compiling {len(paths)} stdlib files")
    census = bench_stdlib.census(paths, workers=2)
    n = census.code_objects

    def reference_bytes(k: int) -> int:
        return next(
            int(r["bytes_per_code"])
            for r in mem
            if r["implementation"] == "reference" and r["consumers"] == k
        )

    host_stock = [
        r
        for r in mem
        if r["implementation"] == f"cpython-{host.version}"
        and r["consumers"] == 1
    ]
    pointer = 8
    stock_one = (
        int(host_stock[0]["bytes_per_code"])
        if host_stock
        else pointer + 2 * pointer
    )
    capacity = 8
    while capacity < 2 * n:
        capacity *= 2
    rows = [
        {
            "design": "always_present_pointer",
            "consumers": 0,
            "code_objects": n,
            "extra_bytes": pointer * n,
        },
        {
            "design": "always_present_pointer",
            "consumers": 1,
            "code_objects": n,
            "extra_bytes": stock_one * n,
            "note": "stock CPython: pointer plus the extra block "
            "allocated by the first SetExtra",
        },
        {
            "design": "side_hash_table",
            "consumers": 0,
            "code_objects": n,
            "extra_bytes": 0,
        },
        {
            "design": "side_hash_table",
            "consumers": 1,
            "code_objects": n,
            "extra_bytes": SIDE_TABLE_ENTRY * n,
            "table_bytes": SIDE_TABLE_ENTRY * capacity,
            "note": "entry size x code objects holding a value; "
            "table_bytes is the power-of-two table at load <= 1/2",
        },
        {
            "design": "flag_gated_trailing_field",
            "consumers": 0,
            "code_objects": n,
            "extra_bytes": reference_bytes(0) * n,
        },
        {
            "design": "flag_gated_trailing_field",
            "consumers": 1,
            "code_objects": n,
            "extra_bytes": reference_bytes(1) * n,
            "note": "reference inline block, paid by every code object "
            "created while the consumer is active",
        },
    ]
    details = {
        "python": host.version,
        "files": census.files,
        "failed_files": census.failed,
        "assumption": "with one consumer, every code object holds a value",
    }
    return rows, details
