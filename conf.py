"""Sphinx configuration: the one docs site of the project.

Build it with ``tox -e docs``, which runs::

    sphinx-build -n -W --keep-going -b html . docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).parent
# The traceability extension lives in the repository, not on PyPI.
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

# -- Project information ---------------------------------------------------

project = "PEP 9999: code-object extra storage"
author = "the PEP 9999 authors"
copyright = "2026, the PEP 9999 authors"
release = "1.0.0"  # the suite's version; the spec's is the PEP header's

# -- General configuration -------------------------------------------------

extensions = ["coextra_docs"]

# Only these are documents: the repository holds much else.
include_patterns = ["index.rst", "pep/*.rst", "docs/*.rst"]
# Not needed for correctness (include_patterns decides); excluded folders
# are not even walked, which keeps a checkout full of build output fast.
exclude_patterns = [
    ".*",
    "build",
    "docs/_build",
    "**/target",
    "**/node_modules",
    "**/__pycache__",
]
root_doc = "index"
templates_path: list[str] = []

nitpicky = True
# C types of CPython that the PEP's signatures mention; they are defined
# in the CPython docs, which the build does not fetch (no intersphinx,
# so that the build works offline).
nitpick_ignore = [
    ("c:identifier", name)
    for name in (
        "PyObject",
        "PyCodeObject",
        "PyInterpreterState",
        "Py_ssize_t",
    )
]

# The traceability extension (docs/_ext/coextra_docs).
coextra_pep_docs = ["pep/pep-*"]
coextra_results_dir = "results"
coextra_report_schema = "conformance/report.schema.json"
coextra_benchmarks = "benchmarks/results/latest.json"
coextra_benchmarks_schema = "benchmarks/results.schema.json"
# Pages generated from the sources: the suite's tests by requirement, the
# reference's C with line anchors, and the patched CPython's patch series
# (CPython 3.13.15's).
coextra_tests_dir = "conformance/tests"
coextra_c_sources = ["reference_impl/src/*.h", "reference_impl/src/*.c"]
coextra_patch_dirs = ["implementations/cpython-3.13"]

# -- Options for HTML output -----------------------------------------------

html_theme = "furo"
html_title = "PEP 9999"
html_static_path = ["docs/_static"]
html_css_files = ["coextra.css"]
html_theme_options = {
    "navigation_with_keys": True,
}
html_show_sourcelink = False
