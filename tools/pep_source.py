"""The PEP source format, defined once: header, requirement entries, blocks.

Every tool that reads the PEP gets its structure from here:
``tools/check_pep.py`` (the checker), ``tools/gen_requirements.py`` (the
requirement registry), ``tools/gen_pep_tables.py`` (the generated blocks)
and the docs extension (``docs/_ext/coextra_docs``, which matches the
requirement terms docutils hands it against :data:`TERM_RE` and checks
the preamble against :data:`REQUIRED_HEADERS`).  A meta-test
(``meta_tests/test_pep_tools.py``) fails if another module defines its own
requirement-term pattern or header list.

A requirement entry is a label and a term line at the left margin with an
indented body::

    .. _r-store-2:

    R-STORE-2 — Round trip (MUST)
       ... MUST ...

The dash is U+2014 and the level is one of :data:`LEVELS`.  Standard
library only: the checker runs in an environment without the project's
packages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The PEP this repository specifies (a PEP 12 draft placeholder number).
PEP_PATH = REPO / "pep" / "pep-9999.rst"

# -- header -----------------------------------------------------------------

#: Every header PEP 12 allows, in its order; Spec-Version is this
#: project's addition and sits next to Python-Version, the other version.
HEADER_ORDER = (
    "PEP",
    "Title",
    "Author",
    "Sponsor",
    "PEP-Delegate",
    "Discussions-To",
    "Status",
    "Type",
    "Topic",
    "Requires",
    "Created",
    "Python-Version",
    "Spec-Version",
    "Post-History",
    "Replaces",
    "Superseded-By",
    "Resolution",
)
#: Headers every PEP of this project carries.
REQUIRED_HEADERS = (
    "PEP",
    "Title",
    "Author",
    "Status",
    "Type",
    "Created",
    "Python-Version",
    "Spec-Version",
)
#: Headers whose value is a comma-separated list of PEP numbers.
PEP_LIST_HEADERS = ("Requires", "Replaces", "Superseded-By")


def header_fields(lines: Sequence[str]) -> list[tuple[int, str, str]]:
    """Return (line, field, value) for the header block at the top.

    A continuation line (indented) is joined to the field above it; a line
    without a colon gives an empty field name, which the checker reports.
    """
    fields: list[tuple[int, str, str]] = []
    for index, line in enumerate(lines):
        if not line.strip():
            break
        if line[0] in " \t" and fields:
            number, name, value = fields[-1]
            fields[-1] = (number, name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        fields.append((index + 1, name if sep else "", value.strip()))
    return fields


def header_value(lines: Sequence[str], name: str) -> str:
    """Return the value of one header field; ValueError if it is absent."""
    for _, field, value in header_fields(lines):
        if field == name:
            return value
    raise ValueError(f"the PEP has no {name} header")


# -- requirements -----------------------------------------------------------

LEVELS = ("MUST", "SHOULD", "MAY")
#: A requirement term: ``R-AREA-n — Title (LEVEL)``, single spaces.
TERM_RE = re.compile(
    r"^(?P<id>R-(?P<area>[A-Z]+)-(?P<number>[1-9][0-9]*))"
    r" \u2014 (?P<title>\S.*?) \((?P<level>MUST|SHOULD|MAY)\)$"
)
#: Anything at the left margin that looks like a try at a term.
TERM_ATTEMPT_RE = re.compile(r"^R-[A-Za-z0-9]")
#: How a term should read, for messages about malformed ones.
TERM_FORM = "R-AREA-n \u2014 Title (MUST|SHOULD|MAY)"
ID_RE = re.compile(r"^R-[A-Z]+-[1-9][0-9]*$")
LABEL_RE = re.compile(r"^\.\. _(?P<label>[^:]+):\s*$")
REQ_LABEL_RE = re.compile(r"^r-[a-z0-9]+-[0-9]+$", re.IGNORECASE)
#: A cross-reference to a requirement: :ref:`R-X-1 <r-x-1>` or :ref:`r-x-1`.
REF_RE = re.compile(r":ref:`(?:[^`<]*<)?(?P<label>r-[a-z]+-[0-9]+)>?`")
#: RFC 2119 keywords; only capitals carry the RFC's meaning (RFC 8174).
#: Longer phrases come first so that "MUST NOT" wins over "MUST".
RFC2119_RE = re.compile(
    r"\b(MUST NOT|MUST|SHALL NOT|SHALL|SHOULD NOT|SHOULD|REQUIRED|"
    r"NOT RECOMMENDED|RECOMMENDED|MAY|OPTIONAL)\b"
)


@dataclass(frozen=True)
class Requirement:
    """One requirement entry as written in the PEP source."""

    id: str
    area: str
    number: int
    title: str
    level: str
    #: The body, whitespace-normalised; reST markup is kept.
    text: str
    #: Line of the term (``R-AREA-n — Title (LEVEL)``).
    line: int
    #: The label line just before the term, or None if there is none.
    label: str | None
    label_line: int | None

    @property
    def anchor(self) -> str:
        """The reST label the requirement must carry."""
        return self.id.lower()


@dataclass(frozen=True)
class TermAttempt:
    """A left-margin line starting with ``R-`` that is no valid term."""

    line: int
    text: str


def match_term(text: str) -> re.Match[str] | None:
    """Match one requirement term (the line, without its body)."""
    return TERM_RE.match(text.strip())


def _previous_label(
    lines: Sequence[str], index: int
) -> tuple[str | None, int | None]:
    """Return the label directly above line ``index`` (blanks skipped)."""
    j = index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j >= 0:
        match = LABEL_RE.match(lines[j])
        if match:
            return match["label"], j + 1
    return None, None


def indented_block_end(lines: Sequence[str], index: int) -> int:
    """Return the index after the indented block that follows ``index``."""
    j = index + 1
    while j < len(lines) and (not lines[j].strip() or lines[j][0] in " \t"):
        j += 1
    return j


def _body(lines: Sequence[str], index: int) -> str:
    """Collect the indented body below the term on line ``index``."""
    parts = [
        line.strip()
        for line in lines[index + 1 : indented_block_end(lines, index)]
    ]
    return " ".join(" ".join(parts).split())


def parse_requirements(
    lines: Sequence[str],
) -> tuple[list[Requirement], list[TermAttempt]]:
    """Find requirement entries; also return malformed term attempts."""
    found: list[Requirement] = []
    attempts: list[TermAttempt] = []
    in_literal = False
    for index, raw in enumerate(lines):
        line = raw.rstrip("\n")
        # A line ending in "::" opens a literal block; its indented
        # contents are examples, never requirements.
        if line.rstrip().endswith("::"):
            in_literal = True
            continue
        if in_literal and line and line[0] not in " \t":
            in_literal = False
        if in_literal or not TERM_ATTEMPT_RE.match(line):
            continue
        match = TERM_RE.match(line)
        if match is None:
            attempts.append(TermAttempt(index + 1, line))
            continue
        label, label_line = _previous_label(lines, index)
        found.append(
            Requirement(
                id=match["id"],
                area=match["area"],
                number=int(match["number"]),
                title=match["title"],
                level=match["level"],
                text=_body(lines, index),
                line=index + 1,
                label=label,
                label_line=label_line,
            )
        )
    return found, attempts


# -- generated blocks -------------------------------------------------------

GENERATED_BEGIN = ".. BEGIN GENERATED"
GENERATED_BEGIN_RE = re.compile(
    r"^\.\. BEGIN GENERATED: (?P<name>[a-z0-9]+(?:-[a-z0-9]+)*)$"
)
GENERATED_END = ".. END GENERATED"


# -- compatibility parts ----------------------------------------------------

#: The Compatibility section lists the requirements of each part between
#: ``.. BEGIN COMPATIBILITY: <part>`` and ``.. END COMPATIBILITY``.
COMPATIBILITY_RE = re.compile(
    r"^\.\. BEGIN COMPATIBILITY: (?P<part>\S+)\n(?P<body>.*?)"
    r"^\.\. END COMPATIBILITY",
    flags=re.S | re.M,
)
#: ``R-STORE-1 to R-STORE-11``: a range of one area.
ID_RANGE_RE = re.compile(r"R-([A-Z]+)-(\d+) to R-\1-(\d+)")


def compatibility_parts(text: str) -> dict[str, list[str]]:
    """Return the requirement IDs each Compatibility part lists, in order.

    ``R-X-a to R-X-b`` names every ID of the range; an ID listed twice
    appears twice, so that a caller can report it.
    """
    parts: dict[str, list[str]] = {}
    for match in COMPATIBILITY_RE.finditer(text):
        body = " ".join(match["body"].split())
        ids: list[str] = []
        for area, first, last in ID_RANGE_RE.findall(body):
            ids += [f"R-{area}-{n}" for n in range(int(first), int(last) + 1)]
        ids += re.findall(r"R-[A-Z]+-\d+", ID_RANGE_RE.sub("", body))
        parts[match["part"]] = ids
    return parts


# -- files ------------------------------------------------------------------


def read_lines(path: Path) -> list[str]:
    """Read a PEP source as a list of lines without line endings."""
    return path.read_text(encoding="utf-8").splitlines()
