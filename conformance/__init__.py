"""Conformance suite for PEP 8523, a pytest plugin.

Run it with ``pytest --pyargs coextra_conformance --coextra-impl=NAME``.
"""

__version__ = "1.0.0"
