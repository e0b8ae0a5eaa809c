"""Extra-storage bytes per code object in stock CPython 3.6-3.13.

Each interpreter runs a small script (plain enough for 3.6) that calls
the stock API through ``ctypes.pythonapi`` (a ``PyDLL``: the GIL stays
held) and measures ``sys.getsizeof`` of a fresh code object before and
after every consumer stored a value.  CPython allocates the extra block
on the first SetExtra, sized for every index requested so far, and
``code.__sizeof__`` counts it.  The always-present ``co_extra`` pointer
is checked in the interpreter's own headers: it is a field of
``PyCodeObject`` in every version, paid by every code object.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench_build import PythonInfo

#: Consumer counts reported for every implementation.
CONSUMERS = (0, 1, 4)

_SCRIPT = """\
import ctypes, json, os, sys, sysconfig
api = ctypes.pythonapi
if sys.version_info >= (3, 12):
    request = api.PyUnstable_Eval_RequestCodeExtraIndex
    set_extra = api.PyUnstable_Code_SetExtra
else:
    request = api._PyEval_RequestCodeExtraIndex
    set_extra = api._PyCode_SetExtra
request.restype = ctypes.c_ssize_t
request.argtypes = [ctypes.c_void_p]
set_extra.restype = ctypes.c_int
set_extra.argtypes = [ctypes.py_object, ctypes.c_ssize_t, ctypes.c_void_p]
indices = []
rows = []
for k in CONSUMERS:
    while len(indices) < k:
        index = request(None)
        if index < 0:
            raise SystemExit("request failed")
        indices.append(index)
    code = compile("x = %d" % k, "<memory %d>" % k, "exec")
    before = sys.getsizeof(code)
    for index in indices:
        if set_extra(code, index, 1) < 0:
            raise SystemExit("set failed")
    rows.append({"consumers": k, "sizeof_before": before,
                 "sizeof_after": sys.getsizeof(code)})
include = sysconfig.get_paths()["include"]
field = False
for header in ("code.h", os.path.join("cpython", "code.h")):
    path = os.path.join(include, header)
    if os.path.exists(path):
        with open(path) as f:
            field = field or "void *co_extra;" in f.read()
print(json.dumps({"version": "%d.%d.%d" % sys.version_info[:3],
                  "pointer_field": field,
                  "pointer_bytes": ctypes.sizeof(ctypes.c_void_p),
                  "rows": rows}))
"""


def stock_memory(python: PythonInfo) -> list[dict[str, Any]]:
    """Rows for the ``memory`` list of the results, one per k."""
    script = f"CONSUMERS = {CONSUMERS!r}\n" + _SCRIPT
    out = subprocess.run(
        [python.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    data = json.loads(out)
    pointer = data["pointer_bytes"] if data["pointer_field"] else 0
    rows = []
    for row in data["rows"]:
        delta = row["sizeof_after"] - row["sizeof_before"]
        rows.append(
            {
                "implementation": f"cpython-{data['version']}",
                "consumers": row["consumers"],
                "bytes_per_code": pointer + delta,
                "pointer_bytes": pointer,
                "block_bytes": delta,
                "sizeof_code": row["sizeof_after"],
            }
        )
    return rows
