"""Start the benchmark's extra-storage consumer in every process.

Copied as ``sitecustomize.py`` beside the compiled
``_coextra_bench_consumer`` extension; bench_pyperformance.py puts that
folder on ``PYTHONPATH`` (inherited by pyperf's worker processes) for the
runs "with one consumer".  Importing the extension starts the consumer.
"""

import importlib

importlib.import_module("_coextra_bench_consumer")
