"""Write an expectations file from what a conformance run observed.

Usage::

    python tools/gen_expectations.py REPORT.json EXPECTATIONS.toml
    python tools/gen_expectations.py REPORT.json EXPECTATIONS.toml --check

The report (``--coextra-report``) says which requirements did not pass.
Each of them gets an entry; an entry the file already has keeps its
hand-written reason, link and the comment lines above it, and its
``outcome`` follows the observation (``crashed`` when a test of the
requirement crashed or hung).  A requirement observed without a reason
yet gets one quoting the failing test's message, marked ``Observed:`` for
a person to rewrite with the cause; such a placeholder is refreshed from
each new observation, a reason without the mark is never touched.  The
project's tests refuse a committed file that still holds a placeholder.
Entries for requirements that now pass, or are not applicable, are
dropped (and listed on stderr).

The file's leading comment block is kept, except for the block between
the ``-- measured`` and ``-- end`` lines, which is rewritten from the
report: the implementation's version and which capabilities it declares.
``--check`` writes nothing and exits 1 if the file would change.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 takes tomli, tomllib's origin
    import tomli as tomllib

#: Requirement outcomes that an expectation stands for.
DEVIATIONS = ("fail", "crashed", "xfail")
#: Capabilities an implementation may declare (report.schema.json).
#: How a reason that only quotes a failing test's message starts.
PLACEHOLDER = "Observed:"
MEASURED_START = "# -- measured"
MEASURED_END = "# -- end"
WIDTH = 79


class UsageError(Exception):
    """Bad input; the message says what to fix."""


def split_file(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """Return the header lines and, per ID, the comment lines above it."""
    lines = text.splitlines()
    header: list[str] = []
    comments: dict[str, list[str]] = {}
    pending: list[str] = []
    seen_entry = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            key = stripped[1:-1].strip()
            if not seen_entry:
                # The header ends at the last blank line before the
                # first entry's own comment.
                header, pending = _cut_header(header + pending)
            comments[key] = pending
            pending = []
            seen_entry = True
        elif not seen_entry:
            header.append(line)
        elif stripped.startswith("#"):
            pending.append(line)
        elif not stripped:
            pending = []
    if not seen_entry:
        header, _ = _cut_header(header)
    return header, comments


def _cut_header(lines: list[str]) -> tuple[list[str], list[str]]:
    """Split the lines before the first entry at their last blank line."""
    for position in range(len(lines) - 1, -1, -1):
        if not lines[position].strip():
            return lines[:position], lines[position + 1 :]
    return lines, []


def measured_block(report: Mapping[str, Any], source: str) -> list[str]:
    """Describe the measured implementation (rewritten on each run)."""
    implementation = report["implementation"]
    declared = sorted(implementation["capabilities"])
    schema = Path(__file__).parents[1] / "conformance" / "report.schema.json"
    known = json.loads(schema.read_text(encoding="utf-8"))["$defs"][
        "capability"
    ]["enum"]
    absent = [c for c in known if c not in declared]
    text = (
        f"Measured on {implementation['name']} "
        f"{implementation['version']} ({source}).  Capabilities declared: "
        f"{', '.join(declared) or 'none'}.  Not declared, so their "
        f"requirements are not-applicable and have no entry here: "
        f"{', '.join(absent) or 'none'}."
    )
    body = textwrap.wrap(text, WIDTH - 2, break_on_hyphens=False)
    return [
        f"{MEASURED_START} (tools/gen_expectations.py writes this block)",
        *(f"# {line}" for line in body),
        MEASURED_END,
    ]


def new_header(header: list[str], block: list[str]) -> list[str]:
    """Put ``block`` in place of the header's measured block, or last."""
    starts = [
        i for i, line in enumerate(header) if line.startswith(MEASURED_START)
    ]
    if starts:
        start = starts[0]
        ends = [
            i for i, line in enumerate(header) if line.startswith(MEASURED_END)
        ]
        end = next((i for i in ends if i >= start), len(header) - 1)
        return header[:start] + block + header[end + 1 :]
    return [*header, *block]


def observed(requirement: Mapping[str, Any]) -> tuple[str, str | None]:
    """Return the expected outcome and a failing test's message."""
    tests = requirement["tests"]
    crashed = any(t["outcome"] in ("crashed", "timeout") for t in tests)
    message = next(
        (
            t.get("message")
            for t in tests
            if t["outcome"] in ("failed", "crashed", "timeout")
        ),
        None,
    )
    return ("crashed" if crashed else "fail"), message


def is_placeholder(reason: str) -> bool:
    """Tell whether a reason is the tool's quote, not a stated cause."""
    return reason.strip().startswith(PLACEHOLDER)


def render_reason(reason: str) -> list[str]:
    """Write a reason as the files do: a backslash-continued string."""
    lines = textwrap.wrap(
        reason, WIDTH - 2, break_long_words=False, break_on_hyphens=False
    ) or [""]
    escaped = [_escape(line) for line in lines]
    body = [f"{line} \\" for line in escaped[:-1]] + [f'{escaped[-1]}"""']
    return ['reason = """\\', *body]


def _escape(line: str) -> str:
    """Escape what a TOML basic string cannot hold as it is."""
    return line.replace("\\", "\\\\").replace('"', '\\"')


def generate(
    report: Mapping[str, Any], old_text: str, source: str
) -> tuple[str, list[str]]:
    """Return the new file text and the IDs of dropped entries."""
    old = tomllib.loads(old_text) if old_text.strip() else {}
    header, comments = split_file(old_text)
    lines = new_header(header, measured_block(report, source))
    kept = set()
    for requirement in report["requirements"]:
        key = requirement["id"]
        if requirement["outcome"] not in DEVIATIONS:
            continue
        kept.add(key)
        outcome, message = observed(requirement)
        entry = old.get(key, {})
        reason = entry.get("reason", "")
        if not reason or is_placeholder(reason):
            reason = f"{PLACEHOLDER} {message or 'fails.'}"
        lines.append("")
        lines.extend(comments.get(key, []))
        lines.append(f"[{key}]")
        lines.extend(render_reason(reason.strip()))
        if entry.get("link"):
            lines.append(f"link = {json.dumps(entry['link'])}")
        if outcome != "fail":
            lines.append(f"outcome = {json.dumps(outcome)}")
    dropped = [key for key in old if key not in kept]
    return "\n".join(lines) + "\n", dropped


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, help="JSON report of a run")
    parser.add_argument("expectations", type=Path, help="TOML file to write")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the file would change",
    )
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
        if not {"requirements", "implementation"} <= set(report):
            raise KeyError("requirements or implementation")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"error: {args.report}: not a conformance report ({exc}): give "
            f"the file written by --coextra-report",
            file=sys.stderr,
        )
        return 2
    path: Path = args.expectations
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        text, dropped = generate(report, old_text, args.report.name)
    except tomllib.TOMLDecodeError as exc:
        print(
            f"error: {path}: not valid TOML ({exc}): fix the syntax first",
            file=sys.stderr,
        )
        return 2
    for key in dropped:
        print(f"{path}: dropped [{key}]: it no longer fails", file=sys.stderr)
    if args.check:
        if text != old_text:
            print(f"{path} is stale: run {parser.prog}", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
