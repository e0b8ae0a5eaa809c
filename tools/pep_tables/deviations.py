"""The ``cpython-deviations`` block: requirement x CPython version.

From the suite's reports ``results/cpython-3.X.json`` and the patched
builds' reports, with the observed behaviour and the upstream issue of
each deviation, taken from the expectations that the reports carry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pep_tables import Json, load_json

#: The patched builds' reports, as (file stem, column heading).
PATCHED_REPORTS = (
    ("cpython-3.13-pep", "3.13 +PEP"),
    ("cpython-3.13t-pep", "3.13t +PEP"),
)
#: Columns in order: stock releases, then the free-threaded build (3.13t).
VERSIONS = [f"3.{minor}" for minor in range(6, 16)] + ["3.13t"]

#: How an outcome reads in a cell of the deviations table.
CELL = {
    "pass": "pass",
    "fail": "**fails**",
    "xfail": "**fails**",
    "crashed": "**crashes**",
    "timeout": "**hangs**",
    "xpass": "pass",
    "not-applicable": "n/a",
    "error": "error",
    "untested": "untested",
}
DEVIATING = frozenset({"fail", "xfail", "crashed", "timeout", "error"})
#: The API's name prefixes: ``_PyEval_``/``_PyCode_`` up to 3.11,
#: ``PyUnstable_Eval_``/``PyUnstable_Code_`` from 3.12.
_API_PREFIX = re.compile(r"\b(?:_Py|PyUnstable_)(?=(?:Eval|Code)_)")


def _by_id(report: Json) -> dict[str, Json]:
    return {entry["id"]: entry for entry in report["requirements"]}


def _ref(req_id: str) -> str:
    return f":ref:`{req_id} <{req_id.lower()}>`"


def _version_ranges(versions: Sequence[str]) -> str:
    """Spell consecutive versions as ranges: 3.6 - 3.9, 3.12."""
    positions = [VERSIONS.index(v) for v in versions]
    runs: list[list[int]] = []
    for pos in positions:
        # A build variant such as 3.13t never extends a run of releases.
        variant = VERSIONS[pos].endswith("t")
        if runs and pos == runs[-1][-1] + 1 and not variant:
            runs[-1].append(pos)
        else:
            runs.append([pos])
    spelled = []
    for run in runs:
        first, last = VERSIONS[run[0]], VERSIONS[run[-1]]
        spelled.append(first if first == last else f"{first} - {last}")
    return ", ".join(spelled)


def deviations_block(results: Path) -> list[str]:
    """Return the lines of the ``cpython-deviations`` block."""
    reports: dict[str, dict[str, Json]] = {}
    for version in VERSIONS:
        path = results / f"cpython-{version}.json"
        if path.is_file():
            reports[version] = _by_id(load_json(path))
    if not reports:
        return [
            "*No CPython results are committed yet: run* ``tox -e py36`` "
            "*...* ``tox -e py315``, ``tox -e py313t``."
        ]
    patched = {
        heading: _by_id(load_json(results / f"{stem}.json"))
        for stem, heading in PATCHED_REPORTS
        if (results / f"{stem}.json").is_file()
    }
    versions = list(reports)
    # A report lists the requirements in PEP order; _by_id keeps it.  The
    # longest report decides the order: a report made before a requirement
    # existed shows it as untested.
    longest: dict[str, Json] = max(reports.values(), key=len)
    order = list(longest)
    untested: Json = {"outcome": "untested"}
    for v in versions:
        for req_id in order:
            reports[v].setdefault(req_id, untested)
    rows = [
        req_id
        for req_id in order
        if any(reports[v][req_id]["outcome"] in DEVIATING for v in versions)
        or any(
            report.get(req_id, untested)["outcome"] in DEVIATING
            for report in patched.values()
        )
    ]
    total = len(order)
    lines = [
        f"Measured by the conformance suite against stock CPython "
        f"{_version_ranges(versions)} (``results/cpython-3.X.json``; "
        f"3.14 and 3.15 are Debian's builds, 3.13t the free-threaded build "
        f"of 3.13.15) and against the patched 3.13.15 of "
        f"`Reference Implementation`_ (columns *+PEP*, default and "
        f"free-threaded builds).  Of {total} requirements, the {len(rows)} "
        f"below fail in at least one column; every other one passes wherever "
        f"the adapter can exercise it.  *n/a* marks a capability that the "
        f"version lacks (index release and the inline flag everywhere; "
        f"constructor hooks before 3.12), which the suite "
        f"reports as not applicable rather than as a pass.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :class: coextra-deviations",
        "",
        "   * - Requirement",
    ]
    lines += [f"     - {v}" for v in versions]
    lines += [f"     - {heading}" for heading in patched]
    for req_id in rows:
        level = next(
            reports[v][req_id]["level"]
            for v in versions
            if "level" in reports[v][req_id]
        )
        lines.append(f"   * - {_ref(req_id)} ({level})")
        for v in versions:
            lines.append(f"     - {_cell(reports[v][req_id])}")
        for report in patched.values():
            entry = report.get(req_id, {"outcome": "untested"})
            lines.append(f"     - {_cell(entry)}")
    lines += [
        "",
        "What the suite observed, newest version first (the reasons of "
        "the expectations files ``implementations/cpython/expectations/"
        "3.X.toml``; before 3.12 the functions carry their ``_Py`` names):",
        "",
    ]
    for req_id in rows:
        lines += _observations(req_id, versions, reports)
    return lines


def _cell(entry: Json) -> str:
    """Spell one outcome; an expected failure shows how it failed."""
    outcome = entry["outcome"]
    if outcome == "xfail":
        how = (entry.get("expectation") or {}).get("outcome", "fail")
        outcome = how if how in ("crashed", "timeout") else "fail"
    return CELL[outcome]


def _observations(
    req_id: str, versions: Sequence[str], reports: dict[str, dict[str, Json]]
) -> list[str]:
    """One bullet per requirement: each distinct reason and its versions."""
    # Reasons that differ only in the spelling of the API (the ``_Py``
    # names before 3.12) are one observation; the newest text is shown.
    groups: dict[str, list[str]] = {}
    text_of: dict[str, str] = {}
    links: dict[str, str] = {}
    for v in versions:
        entry = reports[v][req_id]
        if entry["outcome"] not in DEVIATING:
            continue
        expectation = entry.get("expectation") or {}
        reason = expectation.get("reason") or "Fails; no reason recorded."
        key = _API_PREFIX.sub("", reason)
        groups.setdefault(key, []).append(v)
        text_of[key] = reason
        if expectation.get("link"):
            links[key] = expectation["link"]
    items = sorted(
        groups.items(), key=lambda item: -VERSIONS.index(item[1][-1])
    )
    out = [f"* {_ref(req_id)}:"]
    for key, where in items:
        text = _escape(text_of[key])
        link = links.get(key)
        if link:
            text += f" ({_link(link)})"
        out.append(f"  *{_version_ranges(where)}:* {text}")
    out.append("")
    return _wrap_bullet(out)


def _escape(text: str) -> str:
    """Make free text safe for reST: literal asterisks and backquotes."""
    text = text.replace("\\", "\\\\")
    return re.sub(r"([*`|_])", r"\\\1", text)


def _link(url: str) -> str:
    match = re.search(r"github\.com/python/cpython/(issues|pull)/(\d+)", url)
    label = f"gh-{match[2]}" if match else url
    return f"`{label} <{url}>`__"


def _wrap_bullet(lines: list[str]) -> list[str]:
    """Keep the bullet's continuation lines as one paragraph each."""
    head, *body = lines
    out = [head]
    for line in body:
        out.append(line if not line else "  " + line.strip())
        if line:
            out.append("")
    while out and not out[-1]:
        out.pop()
    out.append("")
    return out
