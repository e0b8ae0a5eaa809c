"""Stock CPython 3.6-3.15 under the PEP 9999 conformance suite.

The interpreter under test runs out of process (see :mod:`.adapter`); it
is chosen with the ``COEXTRA_PYTHON`` environment variable.
"""

from __future__ import annotations

from ._build import AdapterLoadError
from .adapter import CPythonImplementation, CPythonSession, implementation

__all__ = [
    "AdapterLoadError",
    "CPythonImplementation",
    "CPythonSession",
    "implementation",
]
