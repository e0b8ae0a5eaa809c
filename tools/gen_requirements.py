"""Generate the requirement registry from the PEP source.

Usage::

    python tools/gen_requirements.py            # write the registry
    python tools/gen_requirements.py --check    # exit 1 if it is stale

The PEP (``pep/pep-9999.rst``) is the single source of the requirements;
``conformance/requirements.json`` is derived from it and is never edited
by hand.  The PEP is parsed by ``tools/pep_source.py`` (the one parser
of the PEP source) and checked by ``tools/check_pep.py``: a PEP with
requirement errors is refused rather than turned into a broken registry.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from check_pep import validate_requirements

from pep_source import (
    PEP_PATH,
    REPO,
    header_value,
    parse_requirements,
    read_lines,
)

DEFAULT_PEP = PEP_PATH
DEFAULT_OUTPUT = REPO / "conformance" / "requirements.json"
REGEN_COMMAND = "tox -e regen"


def _relative(path: Path) -> str:
    """Spell ``path`` relative to the repository when it lies inside."""
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.name


def build_registry(pep: Path) -> dict[str, object]:
    """Return the registry document for one PEP source."""
    lines = read_lines(pep)
    problems = list(validate_requirements(lines))
    if problems:
        details = "; ".join(f"line {n}: {m}" for n, m in problems[:5])
        raise ValueError(f"{pep} has requirement errors: {details}")
    requirements, _ = parse_requirements(lines)
    return {
        "comment": (
            f"GENERATED from {_relative(pep)} by tools/gen_requirements.py."
            f" DO NOT EDIT; regenerate with `{REGEN_COMMAND}`."
        ),
        "pep": int(header_value(lines, "PEP")),
        "spec_version": header_value(lines, "Spec-Version"),
        "requirements": [
            {
                "id": req.id,
                "level": req.level,
                "area": req.area,
                "title": req.title,
                "text": req.text,
                "anchor": req.anchor,
                "line": req.line,
            }
            for req in requirements
        ],
    }


def render(registry: dict[str, object]) -> str:
    """Serialise the registry the one way it is committed."""
    return json.dumps(registry, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write or check the registry; return the exit status."""
    parser = argparse.ArgumentParser(
        description="Generate conformance/requirements.json from the PEP."
    )
    parser.add_argument(
        "--pep",
        type=Path,
        default=DEFAULT_PEP,
        help="PEP source to read. Default: pep/pep-9999.rst",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="Registry to write. Default: conformance/requirements.json",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="Write nothing; exit 1 if the registry is out of date.",
    )
    args = parser.parse_args(argv)
    try:
        text = render(build_registry(args.pep))
    except (OSError, ValueError) as exc:
        print(f"gen_requirements: {exc}", file=sys.stderr)
        return 1
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            print(
                f"{_relative(args.output)} is stale; regenerate it with "
                f"`{REGEN_COMMAND}` (python tools/gen_requirements.py)",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
