"""What a Python consumer does today: side tables keyed by code object.

Two shapes are in use:

* a ``dict`` keyed by ``id(code)``: the consumer must keep the code
  object alive (or clear the entry when it dies), otherwise a later code
  object at the same address inherits the entry;
* a ``weakref.WeakKeyDictionary`` keyed by the code object itself.
  Code objects compare and hash **by value**, so two equal code objects
  (the same source compiled twice) share one entry: the table is keyed
  by value, not by identity, and a consumer that stores per-object data
  this way silently merges them.

The benchmark code objects are all different by value, so both tables
hold 64 entries and the lookups measure the common case.  Times are per
lookup and include the ``for`` loop that drives them; ``py_loop_empty``
is that loop alone, for reference.
"""

from __future__ import annotations

import timeit
import types
import weakref

#: Same working set as the C harness (OBJ_COUNT in harness/bench.h).
OBJ_COUNT = 64


def make_codes(count: int = OBJ_COUNT) -> list[types.CodeType]:
    """Code objects that all differ by value (so no two merge)."""
    return [compile(f"x = {i}", f"<bench {i}>", "exec") for i in range(count)]


def make_tables(
    codes: list[types.CodeType],
) -> tuple[dict[int, int], weakref.WeakKeyDictionary[types.CodeType, int]]:
    """Build the two side tables, each with one value per code object."""
    by_id = {id(code): i + 1 for i, code in enumerate(codes)}
    weak: weakref.WeakKeyDictionary[types.CodeType, int] = (
        weakref.WeakKeyDictionary()
    )
    for i, code in enumerate(codes):
        weak[code] = i + 1
    return by_id, weak


def equal_code_objects_merge() -> bool:
    """Show that a WeakKeyDictionary merges equal code objects."""
    first = compile("x = 1", "<same>", "exec")
    second = compile("x = 1", "<same>", "exec")
    table: weakref.WeakKeyDictionary[types.CodeType, int] = (
        weakref.WeakKeyDictionary()
    )
    table[first] = 1
    table[second] = 2
    return first is not second and len(table) == 1


#: Loop statements, one operation per code object per pass.
STATEMENTS = {
    "py_loop_empty": "for c in codes: v = c",
    "py_dict_get": "for c in codes: v = by_id[id(c)]",
    "py_weakkeydict_get": "for c in codes: v = weak[c]",
}


def _calibrate(timer: timeit.Timer, target_ns: float) -> int:
    """Count the passes that make one sample last about ``target_ns``."""
    passes = 1
    while True:
        spent = timer.timeit(passes) * 1e9
        if spent >= target_ns / 4:
            return max(1, round(passes * target_ns / spent))
        passes *= 2


def time_cases(
    target_ns: float, repeats: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Nanoseconds per operation of each statement, per repeat.

    Each sample lasts about ``target_ns``; the cases are interleaved
    within each repeat, like the C cases.  Also returns the operations
    per sample of each case.
    """
    codes = make_codes()
    by_id, weak = make_tables(codes)
    namespace = {"codes": codes, "by_id": by_id, "weak": weak}
    timers = {
        name: timeit.Timer(stmt, globals=namespace)
        for name, stmt in STATEMENTS.items()
    }
    passes = {
        name: _calibrate(timer, target_ns) for name, timer in timers.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeats):
        for name, timer in timers.items():
            ops = passes[name] * len(codes)
            samples[name].append(timer.timeit(passes[name]) * 1e9 / ops)
    return samples, {name: n * len(codes) for name, n in passes.items()}
