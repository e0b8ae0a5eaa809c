"""Read and check the committed conformance reports (``results/*.json``).

This module knows nothing about Sphinx, so that it can be tested alone.
Every problem is a :class:`ReportProblem` naming the file and the entry;
the Sphinx glue turns them into build errors.

A report is checked in two steps: against the JSON schema that the suite
commits (``conformance/report.schema.json``) when it exists, and then for
the few facts the pages rely on whatever the schema says (an ``id`` and an
``outcome`` per requirement, known outcome words, known requirement IDs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Outcome words of the report format (``conformance/report.schema.json``).
OUTCOMES = (
    "pass",
    "fail",
    "xfail",
    "xpass",
    "not-applicable",
    "crashed",
    "error",
    "untested",
)

#: The widest set of columns the site expects, in matrix order, with
#: their labels (the render test builds a matrix with all of them).  Any
#: ``*.json`` in the results folder gets a column: the order and label
#: come from its file name (:func:`column_order`, :func:`column_label`).
KNOWN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("reference", "Ref."),
    *((f"cpython-3.{minor}", f"3.{minor}") for minor in range(6, 14)),
    ("cpython-3.13t", "3.13t"),
    ("cpython-3.14", "3.14"),
    ("cpython-3.15", "3.15"),
    ("rust", "Rust"),
    ("cpython-3.13-pep", "3.13 +PEP"),
    ("cpython-3.13t-pep", "3.13t +PEP"),
)

#: ``cpython-3.13``, ``cpython-3.13t`` (free-threaded), ``cpython-3.13-pep``
#: (patched with the PEP).
_CPYTHON_KEY = re.compile(
    r"cpython-3\.(?P<minor>[0-9]+)(?P<ft>t?)(?P<pep>-pep)?"
)

_REQUIREMENT_ID = re.compile(r"R-[A-Z]+-[0-9]+")


@dataclass(frozen=True)
class ReportProblem:
    """One thing wrong with one report file."""

    path: Path
    #: Where in the file: ``requirements[3] (R-STORE-2)`` or ``$``.
    entry: str
    message: str
    #: 1-based line of the entry in the file, best effort.
    line: int = 1

    def __str__(self) -> str:
        """Spell the problem the way the build log shows it."""
        return f"{self.path.name}: {self.entry}: {self.message}"


@dataclass(frozen=True)
class Expectation:
    """Why a requirement is expected to fail (an expectations file)."""

    reason: str
    link: str | None = None
    #: How it is expected to fail: ``fail`` or ``crashed``.
    outcome: str = "fail"


@dataclass(frozen=True)
class Evidence:
    """What the suite saw in one test that did not pass."""

    nodeid: str
    outcome: str
    text: str


@dataclass(frozen=True)
class Verdict:
    """One requirement's result in one report."""

    requirement: str
    outcome: str
    tests: tuple[str, ...] = ()
    expectation: Expectation | None = None
    evidence: tuple[Evidence, ...] = ()

    @property
    def crashed(self) -> bool:
        """Tell whether the implementation died, expectedly or not."""
        if self.outcome == "crashed":
            return True
        return (
            self.outcome == "xfail"
            and self.expectation is not None
            and self.expectation.outcome == "crashed"
        )


@dataclass(frozen=True)
class Report:
    """One implementation's committed report."""

    path: Path
    #: The file name without ``.json``, e.g. ``cpython-3.12``.
    key: str
    label: str
    name: str
    version: str
    verdict: str | None
    verdicts: Mapping[str, Verdict] = field(default_factory=dict)
    #: The capabilities the implementation declared for this run.
    capabilities: tuple[str, ...] = ()


def column_order(key: str) -> tuple[int, int, int, str]:
    """Sort key: reference, stock CPython, Rust, patched CPython, others.

    CPython columns are ordered by version, the free-threaded build
    (``t``) right after the default build of the same version.
    """
    if key == "reference":
        return (0, 0, 0, key)
    match = _CPYTHON_KEY.fullmatch(key)
    if match is not None:
        group = 3 if match["pep"] else 1
        return (group, int(match["minor"]), len(match["ft"]), key)
    if key == "rust":
        return (2, 0, 0, key)
    return (4, 0, 0, key)


def column_label(key: str) -> str:
    """Return the short column label for a report file name."""
    for known, label in KNOWN_COLUMNS:
        if key == known:
            return label
    match = _CPYTHON_KEY.fullmatch(key)
    if match is not None:
        label = f"3.{match['minor']}{match['ft']}"
        return label + " +PEP" if match["pep"] else label
    return key


def build_of(key: str) -> str | None:
    """Describe the CPython build a column measured, if it is CPython."""
    match = _CPYTHON_KEY.fullmatch(key)
    if match is None:
        return None
    build = "free-threaded build" if match["ft"] else "default build (GIL)"
    return build + (", patched with the PEP" if match["pep"] else "")


def untested_builds(keys: Iterable[str]) -> list[str]:
    """Name the CPython builds next to a tested one that have no report.

    Free-threaded builds exist from 3.13 on; a version whose default build
    has a column but whose free-threaded build has none (or the reverse)
    is named, stock and patched alike.
    """
    present = set(keys)
    missing = []
    for key in sorted(present, key=column_order):
        match = _CPYTHON_KEY.fullmatch(key)
        if match is None or int(match["minor"]) < 13:
            continue
        other_ft = "" if match["ft"] else "t"
        other = f"cpython-3.{match['minor']}{other_ft}{match['pep'] or ''}"
        if other not in present:
            missing.append(other)
    return sorted(set(missing), key=column_order)


def _line_of(text: str, needle: str) -> int:
    """Return the 1-based line where ``needle`` first occurs, else 1."""
    offset = text.find(needle)
    if offset < 0:
        return 1
    return text.count("\n", 0, offset) + 1


def _entry_name(index: int, item: object) -> str:
    """Name the requirement entry ``index`` of a report for messages."""
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        return f"requirements[{index}] ({item['id']})"
    return f"requirements[{index}]"


def _schema_problems(
    path: Path, text: str, data: Any, schema: Mapping[str, Any]
) -> list[ReportProblem]:
    """Validate against the suite's JSON schema."""
    import jsonschema  # a docs dependency only; imported when needed

    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    problems = []
    for error in sorted(validator.iter_errors(data), key=str):
        where = list(error.absolute_path)
        entry = "$"
        line = 1
        if len(where) >= 2 and where[0] == "requirements":
            index = where[1]
            items = (
                data.get("requirements") if isinstance(data, dict) else None
            )
            item = (
                items[index]
                if isinstance(items, list) and isinstance(index, int)
                else None
            )
            entry = _entry_name(int(index), item)
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                line = _line_of(text, f'"{item["id"]}"')
            rest = "".join(f"[{part!r}]" for part in where[2:])
            entry += rest
        elif where:
            entry = "$" + "".join(f"[{part!r}]" for part in where)
        problems.append(
            ReportProblem(
                path,
                entry,
                f"does not match the schema: {error.message}",
                line,
            )
        )
    return problems


def _parse_expectation(value: object) -> Expectation | str | None:
    """Return the expectation, None, or a message saying what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("reason"), str):
        return "expectation must be an object with a 'reason' string"
    link = value.get("link")
    if link is not None and not isinstance(link, str):
        return "expectation 'link' must be a string"
    outcome = value.get("outcome", "fail")
    if outcome not in ("fail", "crashed"):
        return "expectation 'outcome' must be 'fail' or 'crashed'"
    return Expectation(value["reason"], link, outcome)


#: Test outcomes whose message is evidence of a deviation.
_DEVIATING_TESTS = ("failed", "crashed", "error")


def _evidence_lines(value: object) -> list[str]:
    """Spell a structured ``evidence`` value as lines of text.

    The suite may record evidence as a string, a list, or an object of
    named observations; all become plain lines, objects as ``key: value``.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [line for item in value for line in _evidence_lines(item)]
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            inner = _evidence_lines(item)
            if len(inner) == 1:
                lines.append(f"{key}: {inner[0]}")
            else:
                lines.append(f"{key}:")
                lines.extend("  " + line for line in inner)
        return lines
    return [json.dumps(value)]


def _evidence(item: Mapping[str, Any]) -> tuple[Evidence, ...]:
    """Collect what the tests of one requirement entry observed.

    The entry's own ``evidence`` comes first when the report has one;
    then, for each test that failed, crashed or could not run, its
    structured ``evidence`` or else its failure message.
    """
    found = []
    summary = _evidence_lines(item.get("evidence"))
    if summary:
        found.append(
            Evidence("", str(item.get("outcome")), "\n".join(summary))
        )
    for test in item.get("tests") or ():
        if not isinstance(test, dict) or not isinstance(
            test.get("nodeid"), str
        ):
            continue
        outcome = str(test.get("outcome", ""))
        if outcome not in _DEVIATING_TESTS:
            continue
        lines = _evidence_lines(test.get("evidence"))
        if not lines:
            lines = _evidence_lines(test.get("message"))
        found.append(
            Evidence(
                test["nodeid"],
                outcome,
                "\n".join(lines) or "no message recorded",
            )
        )
    return tuple(found)


def parse_report(
    path: Path,
    known_ids: Iterable[str] | None,
    schema: Mapping[str, Any] | None,
) -> tuple[Report | None, list[ReportProblem]]:
    """Read one report; return it (or None) and every problem found.

    ``known_ids`` is the set of requirement IDs of the PEP; when given, an
    entry naming another ID is a problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [ReportProblem(path, "$", f"cannot be read: {exc}")]
    problems: list[ReportProblem] = []
    if schema is not None:
        problems.extend(_schema_problems(path, text, data, schema))
    if not isinstance(data, dict):
        problems.append(ReportProblem(path, "$", "is not a JSON object"))
        return None, problems
    impl = data.get("implementation")
    if not isinstance(impl, dict) or not isinstance(impl.get("name"), str):
        problems.append(
            ReportProblem(
                path, "implementation", "must be an object with a 'name'"
            )
        )
        impl = {"name": path.stem}
    items = data.get("requirements")
    if not isinstance(items, list):
        problems.append(ReportProblem(path, "requirements", "must be a list"))
        items = []
    known = None if known_ids is None else frozenset(known_ids)
    verdicts: dict[str, Verdict] = {}
    for index, item in enumerate(items):
        entry = _entry_name(index, item)
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            problems.append(
                ReportProblem(path, entry, "has no requirement 'id'")
            )
            continue
        req_id = item["id"]
        line = _line_of(text, f'"{req_id}"')
        if not _REQUIREMENT_ID.fullmatch(req_id):
            problems.append(
                ReportProblem(
                    path, entry, "is not a requirement ID (R-AREA-n)", line
                )
            )
            continue
        if known is not None and req_id not in known:
            problems.append(
                ReportProblem(
                    path,
                    entry,
                    "names a requirement that the PEP does not define",
                    line,
                )
            )
            continue
        if req_id in verdicts:
            problems.append(
                ReportProblem(path, entry, "appears twice in the report", line)
            )
            continue
        outcome = item.get("outcome")
        if outcome not in OUTCOMES:
            problems.append(
                ReportProblem(
                    path,
                    entry,
                    f"has outcome {outcome!r}; expected one of "
                    + ", ".join(OUTCOMES),
                    line,
                )
            )
            continue
        expectation = _parse_expectation(item.get("expectation"))
        if isinstance(expectation, str):
            problems.append(ReportProblem(path, entry, expectation, line))
            continue
        tests = []
        for test in item.get("tests") or ():
            if isinstance(test, dict) and isinstance(test.get("nodeid"), str):
                tests.append(test["nodeid"])
            else:
                problems.append(
                    ReportProblem(
                        path, entry, "has a test without a 'nodeid'", line
                    )
                )
        verdicts[req_id] = Verdict(
            req_id, str(outcome), tuple(tests), expectation, _evidence(item)
        )
    summary = data.get("summary")
    verdict = summary.get("verdict") if isinstance(summary, dict) else None
    report = Report(
        path=path,
        key=path.stem,
        label=column_label(path.stem),
        name=str(impl["name"]),
        version=str(impl.get("version", "")),
        verdict=verdict if isinstance(verdict, str) else None,
        verdicts=verdicts,
        capabilities=tuple(
            str(c)
            for c in impl.get("capabilities") or ()
            if isinstance(c, str)
        ),
    )
    return report, problems


def report_paths(results_dir: Path) -> list[Path]:
    """Return the report files of a results folder, in column order."""
    if not results_dir.is_dir():
        return []
    return sorted(
        results_dir.glob("*.json"), key=lambda p: column_order(p.stem)
    )


def load_schema(path: Path) -> dict[str, Any]:
    """Read the report schema."""
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def load_reports(
    paths: Sequence[Path],
    known_ids: Iterable[str] | None,
    schema: Mapping[str, Any] | None,
) -> tuple[list[Report], list[ReportProblem]]:
    """Read every report; a report with problems is left out."""
    known = None if known_ids is None else frozenset(known_ids)
    reports = []
    problems: list[ReportProblem] = []
    for path in paths:
        report, found = parse_report(path, known, schema)
        problems.extend(found)
        if report is not None and not found:
            reports.append(report)
    return reports, problems


def tests_by_requirement(reports: Iterable[Report]) -> dict[str, list[str]]:
    """Union of the test node IDs each report lists per requirement."""
    seen: dict[str, dict[str, None]] = {}
    for report in reports:
        for req_id, verdict in report.verdicts.items():
            bucket = seen.setdefault(req_id, {})
            for nodeid in verdict.tests:
                bucket[nodeid] = None
    return {req_id: list(ids) for req_id, ids in seen.items()}
