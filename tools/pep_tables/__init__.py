"""The generated blocks of the PEP, one module per block family.

``tools/gen_pep_tables.py`` is the command; each module here builds the
lines of its blocks from committed results:

``deviations``
    ``cpython-deviations``: requirement x CPython version.
``costs``
    ``benchmark-figures``: the designs' costs from ``tox -e bench`` and
    the patched interpreter's measurements.
``like_for_like``
    ``like-for-like`` and ``rationale-costs``: every design through what
    it exports, on CPython 3.13.15 patched and unpatched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Json = dict[str, Any]


def load_json(path: Path) -> Json:
    """Read one committed JSON result."""
    data: Json = json.loads(path.read_text(encoding="utf-8"))
    return data


def list_table(title: str, columns: list[str]) -> list[str]:
    """Return the opening lines of a reST list-table with a header row."""
    head = [f".. list-table:: {title}".rstrip(), "   :header-rows: 1", ""]
    first, *rest = columns
    return head + [f"   * - {first}"] + [f"     - {c}" for c in rest]
