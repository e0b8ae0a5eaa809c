"""Check the PEP source: header, section order and requirement entries.

Usage: ``python tools/check_pep.py [PEP ...]``; without arguments every
``pep/pep-*.rst`` of the repository is checked.  Each problem is printed
as ``path:line: message`` and the exit status is 1 if there was any.

The checks (header fields, PEP 12 section order, requirement entries,
the ID rule and the ``.. BEGIN GENERATED: <name>`` / ``.. END GENERATED``
blocks that tools regenerate) are small ``_validate_*`` generators that
yield ``(line, message)`` pairs with imperative messages, in the manner of
python/peps ``check-peps.py``.

The ID rule: every normative statement is a requirement with an ID.  An
RFC 2119 keyword in capitals outside a requirement entry is an error
(mentions between double backquotes or in double quotes, generated
blocks, comments and literal blocks excepted), and so is a paragraph of
an API entry (``.. c:function::`` and friends) that states an error
(``On error``, ``sets an exception``, ``raises``) or thread safety
(``Thread safety:``, ``thread-safe``, ``from any thread``,
``concurrently``) and cites no requirement.  What a header,
a requirement entry and a generated block are is defined once, in
``tools/pep_source.py``, which the registry generator and the docs
extension use too, so all three agree.  Standard library only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from pep_source import (
    GENERATED_BEGIN,
    GENERATED_BEGIN_RE,
    GENERATED_END,
    HEADER_ORDER,
    ID_RE,
    LABEL_RE,
    REF_RE,
    REPO,
    REQ_LABEL_RE,
    REQUIRED_HEADERS,
    RFC2119_RE,
    TERM_FORM,
    Requirement,
    TermAttempt,
    header_fields,
    indented_block_end,
    parse_requirements,
    read_lines,
)

#: Problems are reported as (line number, message); line 1 is the first.
Problem = tuple[int, str]

# -- header -----------------------------------------------------------------

STATUSES = (
    "Draft",
    "Active",
    "Accepted",
    "Provisional",
    "Deferred",
    "Rejected",
    "Withdrawn",
    "Final",
    "Superseded",
)
TYPES = ("Standards Track", "Informational", "Process")
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()

# -- sections ---------------------------------------------------------------

#: Top-level sections in the order they must appear, and whether each is
#: required (PEP 12, "Suggested Sections", plus the ones it allows).
SECTIONS = (
    ("Abstract", True),
    ("Motivation", True),
    ("Rationale", True),
    ("Specification", True),
    ("Backwards Compatibility", True),
    ("Security Implications", True),
    ("How to Teach This", True),
    ("Reference Implementation", True),
    ("Rejected Ideas", True),
    ("Open Issues", True),
    ("Acknowledgements", False),
    ("Footnotes", False),
    ("Change History", False),
    ("References", False),
    ("Copyright", True),
)

# -- requirements -----------------------------------------------------------

# -- header validators ------------------------------------------------------


def _validate_header(
    fields: Sequence[tuple[int, str, str]], path: Path
) -> Iterator[Problem]:
    """Check presence, order, spelling and values of header fields."""
    if not fields:
        yield 1, "Must start with a header block"
        return
    seen: dict[str, int] = {}
    last_position = -1
    for number, name, value in fields:
        if name not in HEADER_ORDER:
            yield number, f"Must not have unknown header: {name!r}"
            continue
        if name in seen:
            yield number, f"Must not repeat header: {name}"
            continue
        seen[name] = number
        position = HEADER_ORDER.index(name)
        if position < last_position:
            yield number, f"Must put header {name} in PEP 12 order"
        last_position = max(last_position, position)
        if not value:
            yield number, f"Must give a value for header: {name}"
    for name in REQUIRED_HEADERS:
        if name not in seen:
            yield fields[0][0], f"Must have required header: {name}"
    values = {name: (number, value) for number, name, value in fields}
    yield from _validate_pep_number(values.get("PEP"), path)
    yield from _validate_choice(values.get("Status"), "Status", STATUSES)
    yield from _validate_choice(values.get("Type"), "Type", TYPES)
    yield from _validate_created(values.get("Created"))
    yield from _validate_version(values.get("Python-Version"), "Python")
    yield from _validate_version(values.get("Spec-Version"), "Spec")
    yield from _validate_author(values.get("Author"))


def _validate_pep_number(
    field: tuple[int, str] | None, path: Path
) -> Iterator[Problem]:
    """Check that the PEP number is an integer matching the file name."""
    if field is None:
        return
    number, value = field
    if not value.isdigit():
        yield number, "PEP number must be an integer"
        return
    match = re.fullmatch(r"pep-(\d+)\.rst", path.name)
    if match and int(match[1]) != int(value):
        yield number, f"PEP number must match the file name ({path.name})"


def _validate_choice(
    field: tuple[int, str] | None, name: str, choices: Sequence[str]
) -> Iterator[Problem]:
    """Check a header whose value comes from a fixed list."""
    if field is not None and field[1] not in choices:
        allowed = ", ".join(choices)
        yield field[0], f"{name} must be one of: {allowed}"


def _validate_created(field: tuple[int, str] | None) -> Iterator[Problem]:
    """Check that Created is a date written as DD-Mon-YYYY."""
    if field is None:
        return
    match = re.fullmatch(r"(\d{2})-([A-Z][a-z]{2})-(\d{4})", field[1])
    if not match or match[2] not in MONTHS or not 1 <= int(match[1]) <= 31:
        yield field[0], "Created must be a date like 25-Nov-2026"


def _validate_version(
    field: tuple[int, str] | None, what: str
) -> Iterator[Problem]:
    """Check that a version header is MAJOR.MINOR."""
    if field is not None and not re.fullmatch(r"\d+\.\d+", field[1]):
        yield field[0], f"{what}-Version must be MAJOR.MINOR, like 1.0"


def _validate_author(field: tuple[int, str] | None) -> Iterator[Problem]:
    """Check that Author is a comma-separated list of names."""
    if field is not None and any(
        not name.strip() for name in field[1].split(",")
    ):
        yield field[0], "Author must be a comma-separated list of names"


# -- section validators -----------------------------------------------------


def _top_level_sections(lines: Sequence[str]) -> list[tuple[int, str]]:
    """Return (line, title) of every section underlined with ``=``."""
    sections: list[tuple[int, str]] = []
    for index in range(1, len(lines)):
        under = lines[index].rstrip()
        title = lines[index - 1].rstrip()
        if (
            title
            and title[0] not in " \t"
            and len(under) >= len(title)
            and set(under) == {"="}
            and not (index >= 2 and set(lines[index - 2].rstrip()) == {"="})
        ):
            sections.append((index, title))
    return sections


def _validate_sections(
    sections: Sequence[tuple[int, str]], last_line: int
) -> Iterator[Problem]:
    """Check that top-level sections are known, unique and ordered."""
    names = [name for name, _ in SECTIONS]
    seen: set[str] = set()
    last_position = -1
    for number, title in sections:
        if title not in names:
            yield number, f"Must not have unknown top-level section: {title}"
            continue
        if title in seen:
            yield number, f"Must not repeat section: {title}"
            continue
        seen.add(title)
        position = names.index(title)
        if position < last_position:
            yield number, f"Must put section {title} in PEP 12 order"
        last_position = max(last_position, position)
    for name, required in SECTIONS:
        if required and name not in seen:
            yield last_line, f"Must have required section: {name}"


# -- requirement validators -------------------------------------------------


def _validate_term_attempts(
    attempts: Iterable[TermAttempt],
) -> Iterator[Problem]:
    """Check lines that start like a requirement but are malformed."""
    for attempt in attempts:
        identifier = attempt.text.split()[0]
        if not ID_RE.match(identifier):
            yield (
                attempt.line,
                (f"Requirement ID must look like R-<AREA>-<n>: {identifier}"),
            )
        else:
            yield (
                attempt.line,
                (f"Requirement term must read '{TERM_FORM}'"),
            )


def _validate_unique(
    requirements: Iterable[Requirement],
) -> Iterator[Problem]:
    """Check that no two requirements share an ID."""
    first: dict[str, int] = {}
    for req in requirements:
        if req.id in first:
            yield (
                req.line,
                (
                    f"Must not repeat requirement {req.id} "
                    f"(first on line {first[req.id]})"
                ),
            )
        else:
            first[req.id] = req.line


def _validate_labels(
    requirements: Iterable[Requirement],
) -> Iterator[Problem]:
    """Check that each requirement carries its lower-cased ID as label."""
    for req in requirements:
        if req.label is None:
            yield (
                req.line,
                (f"Requirement {req.id} must have label .. _{req.anchor}:"),
            )
        elif req.label != req.anchor:
            yield (
                req.label_line or req.line,
                (
                    f"Label must match requirement ID: expected "
                    f"'{req.anchor}', found '{req.label}'"
                ),
            )


def _validate_levels(
    requirements: Iterable[Requirement],
) -> Iterator[Problem]:
    """Check that each body exists and uses its level keyword."""
    for req in requirements:
        if not req.text:
            yield req.line, f"Requirement {req.id} must have a body"
        elif not re.search(rf"\b{req.level}\b", req.text):
            yield (
                req.line,
                (
                    f"Body of {req.id} must contain its level keyword "
                    f"{req.level}"
                ),
            )


def _validate_numbering(
    requirements: Sequence[Requirement],
) -> Iterator[Problem]:
    """Check that the numbers of each area run 1, 2, ... n."""
    by_area: dict[str, list[Requirement]] = {}
    for req in requirements:
        by_area.setdefault(req.area, []).append(req)
    for area, reqs in by_area.items():
        numbers = {req.number for req in reqs}
        missing = sorted(set(range(1, max(numbers) + 1)) - numbers)
        if missing:
            listed = ", ".join(f"R-{area}-{n}" for n in missing)
            yield reqs[-1].line, f"Must not skip requirement IDs: {listed}"


def _validate_orphan_labels(
    lines: Sequence[str], requirements: Iterable[Requirement]
) -> Iterator[Problem]:
    """Check that requirement-style labels precede a requirement."""
    used = {req.label_line for req in requirements}
    for index, line in enumerate(lines):
        match = LABEL_RE.match(line)
        if (
            match
            and REQ_LABEL_RE.match(match["label"])
            and index + 1 not in used
        ):
            yield (
                index + 1,
                (f"Label {match['label']} must be followed by a requirement"),
            )


def _validate_references(
    lines: Sequence[str], requirements: Iterable[Requirement]
) -> Iterator[Problem]:
    """Check that references to requirements name existing ones."""
    anchors = {req.anchor for req in requirements}
    for index, line in enumerate(lines):
        for match in REF_RE.finditer(line):
            if match["label"] not in anchors:
                yield (
                    index + 1,
                    (
                        f"Reference must name an existing requirement: "
                        f"{match['label']}"
                    ),
                )


def validate_requirements(lines: Sequence[str]) -> Iterator[Problem]:
    """Every requirement check, for the PEP checker and the generator."""
    requirements, attempts = parse_requirements(lines)
    yield from _validate_term_attempts(attempts)
    yield from _validate_unique(requirements)
    yield from _validate_labels(requirements)
    yield from _validate_levels(requirements)
    yield from _validate_numbering(requirements)
    yield from _validate_orphan_labels(lines, requirements)
    yield from _validate_references(lines, requirements)
    yield from _validate_normative_text(lines, requirements, attempts)


# -- normative text outside requirements --------------------------------------

#: Mentions of a keyword rather than uses: ``literal`` or "quoted".
MENTION_RE = re.compile(r"``.*?``|\"[^\"]*\"")
#: Directives that document one API item (PEP 782 style entries).
API_DIRECTIVE_RE = re.compile(r"^\.\. c:(function|type|macro|member|var)::")
#: Directives whose content is code, never prose.
CODE_DIRECTIVE_RE = re.compile(r"^\.\. (code-block|code|literalinclude)::")
#: Sentences of an API entry that state behaviour a caller relies on.
#: An error sentence: "On error, ...", "On failure", "sets an exception",
#: "raises SystemError".  A thread-safety sentence: a "Thread safety:"
#: paragraph, "thread-safe", "from any thread", "concurrently".
API_ERROR_RE = re.compile(
    r"\bOn (?:error|failure)\b|\bsets? (?:an exception|``\w+``)|"
    r"\braises?\b",
    re.IGNORECASE,
)
API_THREAD_RE = re.compile(
    r"^Thread safety\b|\bthread-safe\b|\bfrom any thread\b|"
    r"\bconcurrent(?:ly)?\b",
    re.IGNORECASE,
)


def _prose_lines(
    lines: Sequence[str],
    requirements: Iterable[Requirement],
    attempts: Iterable[TermAttempt] = (),
) -> Iterator[tuple[int, str, bool]]:
    """Yield (index, line, in an API entry) for prose outside requirements.

    Left out: the header block, requirement terms and bodies (malformed
    terms too: they are reported as such), generated blocks (tools write
    them from results), comments, literal blocks and code directives.
    Directive bodies are prose, so API entries are checked; the flag says
    whether a line belongs to one.
    """
    skip: set[int] = set()
    starts = [req.line - 1 for req in requirements]
    starts += [attempt.line - 1 for attempt in attempts]
    for start in starts:
        skip.update(range(start, indented_block_end(lines, start)))
    header_end = next(
        (i for i, line in enumerate(lines) if not line.strip()), len(lines)
    )
    skip.update(range(header_end))
    index = header_end
    api_end = -1
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if line.startswith(GENERATED_BEGIN):
            end = index
            while end < len(lines) and lines[end].rstrip() != GENERATED_END:
                end += 1
            index = end + 1
            continue
        if CODE_DIRECTIVE_RE.match(line):
            index = indented_block_end(lines, index)
            continue
        if API_DIRECTIVE_RE.match(line):
            api_end = indented_block_end(lines, index)
            index += 1
            continue
        if stripped.startswith(".. ") and not re.match(
            r"^\s*\.\. [\w:-]+::", line
        ):
            # A comment or a label: skip it and its indented continuation.
            index = indented_block_end(lines, index)
            continue
        if index not in skip:
            yield index, line, index < api_end
        if stripped.endswith("::") and not stripped.startswith(".."):
            # A literal block follows: examples, not rules.
            index = indented_block_end(lines, index)
            continue
        index += 1


def _validate_normative_text(
    lines: Sequence[str],
    requirements: Sequence[Requirement],
    attempts: Sequence[TermAttempt] = (),
) -> Iterator[Problem]:
    """Check that every rule outside the requirements carries an ID.

    An RFC 2119 keyword is allowed only inside a requirement entry; an API
    entry's error or thread-safety paragraph has to cite the requirements
    that state it.
    """
    paragraph: list[tuple[int, str]] = []
    in_api = False

    def check_paragraph() -> Iterator[Problem]:
        if not paragraph or not in_api:
            return
        text = " ".join(line.strip() for _, line in paragraph)
        if REF_RE.search(text):
            return
        thread = API_THREAD_RE.search(text)
        if thread or API_ERROR_RE.search(text):
            kind = "thread-safety" if thread else "error"
            yield (
                paragraph[0][0] + 1,
                (
                    f"API entry's {kind} sentence must cite the requirement "
                    f"that states it (:ref:`R-AREA-n <r-area-n>`)"
                ),
            )

    previous = -2
    for index, line, api in _prose_lines(lines, requirements, attempts):
        if index != previous + 1 or not line.strip():
            yield from check_paragraph()
            paragraph = []
        previous = index
        if line.strip():
            paragraph.append((index, line))
            in_api = api
        for match in RFC2119_RE.finditer(MENTION_RE.sub("", line)):
            yield (
                index + 1,
                (
                    f"RFC 2119 keyword {match[1]} must be inside a "
                    f"requirement: give the rule an ID "
                    f"('R-AREA-n \u2014 Title (LEVEL)') or reword it"
                ),
            )
    yield from check_paragraph()


# -- generated blocks -------------------------------------------------------


def _validate_generated_blocks(lines: Sequence[str]) -> Iterator[Problem]:
    """Check that regenerated blocks are named, unique and closed.

    A block runs from ``.. BEGIN GENERATED: <name>`` to ``.. END
    GENERATED``; tools replace what lies between, so a malformed marker
    would make them overwrite hand-written text.
    """
    open_line: int | None = None
    seen: set[str] = set()
    for index, raw in enumerate(lines):
        line = raw.rstrip()
        if line.startswith(GENERATED_BEGIN):
            match = GENERATED_BEGIN_RE.match(line)
            if open_line is not None:
                yield (
                    index + 1,
                    (
                        f"Must close the generated block of line {open_line} "
                        "before opening another"
                    ),
                )
            if match is None:
                yield (
                    index + 1,
                    (
                        "Generated block must be named: "
                        ".. BEGIN GENERATED: <name>"
                    ),
                )
            elif match["name"] in seen:
                yield (
                    index + 1,
                    (f"Must not repeat generated block: {match['name']}"),
                )
            else:
                seen.add(match["name"])
            open_line = index + 1
        elif line == GENERATED_END:
            if open_line is None:
                yield index + 1, "Must open a generated block before its end"
            open_line = None
    if open_line is not None:
        yield open_line, f"Must close generated block with {GENERATED_END}"


# -- driver -----------------------------------------------------------------


def check_lines(lines: Sequence[str], path: Path) -> list[Problem]:
    """Return every problem of one PEP, sorted by line."""
    problems: list[Problem] = []
    problems.extend(_validate_header(header_fields(lines), path))
    problems.extend(
        _validate_sections(_top_level_sections(lines), max(len(lines), 1))
    )
    problems.extend(validate_requirements(lines))
    problems.extend(_validate_generated_blocks(lines))
    return sorted(problems)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the given PEPs (default: pep/pep-*.rst); return 1 on errors."""
    args = list(sys.argv[1:] if argv is None else argv)
    paths = (
        [Path(arg) for arg in args]
        if args
        else sorted((REPO / "pep").glob("pep-*.rst"))
    )
    if not paths:
        print("check_pep: no PEP found under pep/", file=sys.stderr)
        return 1
    failed = False
    for path in paths:
        try:
            lines = read_lines(path)
        except OSError as exc:
            print(f"{path}:0: Must be readable: {exc.strerror}")
            failed = True
            continue
        for number, message in check_lines(lines, path):
            print(f"{path}:{number}: {message}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
