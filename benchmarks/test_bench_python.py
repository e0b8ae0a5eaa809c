"""pytest-benchmark suites: the costs a Python consumer sees.

These run as plain tests (each benchmarked function once) under the
project's ``--benchmark-disable``, and as benchmarks with
``pytest benchmarks --benchmark-enable``.  The C-level figures, which
a Python loop cannot resolve, come from ``run.py`` and the C harness.
"""

from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
import types
import weakref
from collections.abc import Callable
from typing import Any

import bench_python
import bench_stdlib
import pytest

Tables = tuple[dict[int, int], weakref.WeakKeyDictionary[types.CodeType, int]]

#: One benchmarked call does one pass over the 64 code objects.
CODES = bench_python.make_codes()


@pytest.fixture(scope="module")
def tables() -> Tables:
    """Return the id()-keyed dict and the WeakKeyDictionary, filled."""
    return bench_python.make_tables(CODES)


def lookup_all(get: Callable[[types.CodeType], int]) -> int:
    """Look every code object up once; return the sum of the values."""
    total = 0
    for code in CODES:
        total += get(code)
    return total


EXPECTED_SUM = sum(range(1, len(CODES) + 1))


def test_py_dict_get(benchmark: Any, tables: Tables) -> None:
    """A dict keyed by id(code): the consumer keeps the code alive."""
    by_id = tables[0]
    result = benchmark(lookup_all, lambda code: by_id[id(code)])
    assert result == EXPECTED_SUM


def test_py_weakkeydict_get(benchmark: Any, tables: Tables) -> None:
    """A WeakKeyDictionary keyed by the code object (by value!)."""
    weak = tables[1]
    result = benchmark(lookup_all, weak.__getitem__)
    assert result == EXPECTED_SUM


def test_weakkeydict_merges_equal_code_objects() -> None:
    """Equal code objects share one WeakKeyDictionary entry."""
    assert bench_python.equal_code_objects_merge()


def _stock_api() -> tuple[Any, Any, Any]:
    api = ctypes.pythonapi
    if sys.version_info >= (3, 12):
        names = (
            "PyUnstable_Eval_RequestCodeExtraIndex",
            "PyUnstable_Code_GetExtra",
            "PyUnstable_Code_SetExtra",
        )
    else:
        names = (
            "_PyEval_RequestCodeExtraIndex",
            "_PyCode_GetExtra",
            "_PyCode_SetExtra",
        )
    request, get, set_ = (getattr(api, name) for name in names)
    request.restype = ctypes.c_ssize_t
    request.argtypes = [ctypes.c_void_p]
    get.restype = ctypes.c_int
    get.argtypes = [
        ctypes.py_object,
        ctypes.c_ssize_t,
        ctypes.POINTER(ctypes.c_void_p),
    ]
    set_.restype = ctypes.c_int
    set_.argtypes = [ctypes.py_object, ctypes.c_ssize_t, ctypes.c_void_p]
    return request, get, set_


@pytest.fixture(scope="module")
def stock_index() -> tuple[int, Any]:
    """One stock index (never released: CPython cannot) with values."""
    request, get, set_ = _stock_api()
    index = request(None)
    assert index >= 0
    for i, code in enumerate(CODES):
        assert set_(code, index, i + 1) == 0
    return index, get


def test_stock_get_through_ctypes(
    benchmark: Any, stock_index: tuple[int, Any]
) -> None:
    """The stock GetExtra called from Python (ctypes.pythonapi).

    This is the cost of the call, not of the storage: the C harness
    measures the storage.
    """
    index, get = stock_index
    out = ctypes.c_void_p()
    ref = ctypes.byref(out)

    def read(code: types.CodeType) -> int:
        assert get(code, index, ref) == 0
        return out.value or 0

    assert benchmark(lookup_all, read) == EXPECTED_SUM


def test_compile_typical_module(benchmark: Any) -> None:
    """compile() of one typical stdlib module: the hook's yardstick."""
    stdlib = sysconfig.get_paths()["stdlib"]
    path = os.path.join(stdlib, "textwrap.py")
    with open(path, "rb") as f:
        source = f.read()
    code = benchmark(compile, source, path, "exec", dont_inherit=True)
    assert isinstance(code, types.CodeType)
    assert bench_stdlib.count_code_objects(path) == count_nested(code)


def count_nested(code: types.CodeType) -> int:
    """Code objects reachable from ``code`` through co_consts."""
    return 1 + sum(
        count_nested(c)
        for c in code.co_consts
        if isinstance(c, types.CodeType)
    )
