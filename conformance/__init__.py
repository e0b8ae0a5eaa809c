"""Conformance suite for PEP 9999, a pytest plugin.

Run it with ``pytest --pyargs coextra_conformance --coextra-impl=NAME``.
"""

__version__ = "1.0.0"
