"""Start the extra-storage consumer in every interpreter that imports it.

``run_cpython_tests.py --setting consumer`` puts a directory holding this
file and the compiled ``_startup_consumer`` extension on ``PYTHONPATH``,
so every Python process of CPython's test run (regrtest's workers and the
interpreters the tests start) holds an extra index from start-up and has
a value stored in each code object it builds.  The extension keeps its
state in C globals (single-phase init), so isolated sub-interpreters,
which refuse such modules, run without it, alike on both builds.
"""

try:
    import _startup_consumer  # type: ignore[import-not-found]
except ImportError:
    # An isolated sub-interpreter: see above.
    pass
else:
    _startup_consumer.start()
