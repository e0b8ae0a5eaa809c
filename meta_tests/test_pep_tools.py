"""Tests of the PEP tools: the checker and the registry generator.

``tools/check_pep.py`` must report every kind of problem as
``path:line: message`` (checked on the fixture PEPs under ``fixtures/``),
and ``tools/gen_requirements.py`` must turn the PEP into the registry that
is committed as ``conformance/requirements.json``.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from coextra_conformance.requirements import parse_registry

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOOD = FIXTURES / "pep-9001.rst"
BAD = FIXTURES / "pep-9002.rst"
PEP = REPO / "pep" / "pep-9999.rst"
REGISTRY = REPO / "conformance" / "requirements.json"


@pytest.fixture(scope="module")
def tools() -> Iterator[tuple[ModuleType, ModuleType]]:
    """Import the two scripts as modules (tools/ is not a package)."""
    with pytest.MonkeyPatch.context() as patch:
        # gen_requirements imports check_pep by name, as when it runs as
        # a script from tools/.
        patch.syspath_prepend(str(REPO / "tools"))
        check_pep = importlib.import_module("check_pep")
        gen_requirements = importlib.import_module("gen_requirements")
        yield check_pep, gen_requirements


def _pep_source() -> ModuleType:
    """Import the shared PEP parser (tools/ is not a package)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "tools"))
        return importlib.import_module("pep_source")


@pytest.fixture
def check_pep(tools: tuple[ModuleType, ModuleType]) -> ModuleType:
    """Return the checker module."""
    return tools[0]


@pytest.fixture
def gen_requirements(tools: tuple[ModuleType, ModuleType]) -> ModuleType:
    """Return the generator module."""
    return tools[1]


def _run_checker(
    check_pep: ModuleType, capsys: pytest.CaptureFixture[str], *paths: Path
) -> tuple[int, list[str]]:
    status = check_pep.main([str(path) for path in paths])
    return status, capsys.readouterr().out.splitlines()


# -- check_pep ------------------------------------------------------------


def test_checker_accepts_well_formed_fixture(
    check_pep: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PEP with a complete header, sections and requirements passes."""
    status, out = _run_checker(check_pep, capsys, GOOD)
    assert (status, out) == (0, [])


def test_checker_accepts_the_pep(
    check_pep: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """The project's PEP itself has no problem (default arguments)."""
    status, out = _run_checker(check_pep, capsys)
    assert (status, out) == (0, [])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (1, "Must have required header: Spec-Version"),
        (1, "PEP number must match the file name (pep-9002.rst)"),
        (
            3,
            "Status must be one of: Draft, Active, Accepted, Provisional, "
            "Deferred, Rejected, Withdrawn, Final, Superseded",
        ),
        (4, "Must put header Author in PEP 12 order"),
        (6, "Created must be a date like 25-Nov-2026"),
        (8, "Must not have unknown header: 'Colour'"),
        (23, "Must put section Motivation in PEP 12 order"),
        (
            37,
            "Label must match requirement ID: expected 'r-widget-2', "
            "found 'r-widget-9'",
        ),
        (39, "Body of R-WIDGET-2 must contain its level keyword MUST"),
        (42, "Requirement R-WIDGET-4 must have label .. _r-widget-4:"),
        (47, "Must not repeat requirement R-WIDGET-1 (first on line 34)"),
        (47, "Must not skip requirement IDs: R-WIDGET-3"),
        (50, "Requirement ID must look like R-<AREA>-<n>: R-widget-5"),
        (
            53,
            "Requirement term must read "
            "'R-AREA-n \u2014 Title (MUST|SHOULD|MAY)'",
        ),
        (56, "Reference must name an existing requirement: r-widget-7"),
        (89, "Must not have unknown top-level section: Appendix"),
        (98, "Must have required section: Open Issues"),
    ],
)
def test_checker_reports_problem(
    check_pep: ModuleType,
    capsys: pytest.CaptureFixture[str],
    line: int,
    message: str,
) -> None:
    """Each seeded error of the bad fixture is reported at its line."""
    status, out = _run_checker(check_pep, capsys, BAD)
    assert status == 1
    assert f"{BAD}:{line}: {message}" in out


def test_checker_reports_nothing_else(
    check_pep: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bad fixture yields exactly its seeded problems, in line order."""
    _, out = _run_checker(check_pep, capsys, BAD)
    lines = [int(entry.split(":")[1]) for entry in out]
    assert len(out) == 17
    assert lines == sorted(lines)


def test_checker_reports_missing_file(
    check_pep: ModuleType,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """An unreadable path is a problem, not a traceback."""
    status, out = _run_checker(check_pep, capsys, tmp_path / "pep-1.rst")
    assert status == 1
    assert len(out) == 1
    assert out[0].startswith(f"{tmp_path / 'pep-1.rst'}:0: Must be readable")


def test_checker_requires_spec_version_format(
    check_pep: ModuleType, tmp_path: Path
) -> None:
    """Spec-Version must be MAJOR.MINOR."""
    pep = tmp_path / "pep-9001.rst"
    pep.write_text(
        GOOD.read_text(encoding="utf-8").replace(
            "Spec-Version: 2.3", "Spec-Version: v2"
        ),
        encoding="utf-8",
    )
    problems = check_pep.check_lines(check_pep.read_lines(pep), pep)
    assert problems == [(8, "Spec-Version must be MAJOR.MINOR, like 1.0")]


def test_checker_flags_label_without_requirement(
    check_pep: ModuleType,
) -> None:
    """A requirement-style label must precede a requirement term."""
    lines = [".. _r-widget-1:", "", "Some prose."]
    problems = list(check_pep.validate_requirements(lines))
    assert problems == [
        (1, "Label r-widget-1 must be followed by a requirement")
    ]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [".. BEGIN GENERATED: figures", "text", ".. END GENERATED"],
            [],
        ),
        (
            [".. BEGIN GENERATED: figures", "text"],
            [(1, "Must close generated block with .. END GENERATED")],
        ),
        (
            ["text", ".. END GENERATED"],
            [(2, "Must open a generated block before its end")],
        ),
        (
            [".. BEGIN GENERATED", ".. END GENERATED"],
            [(1, "Generated block must be named: .. BEGIN GENERATED: <name>")],
        ),
        (
            [
                ".. BEGIN GENERATED: a",
                ".. END GENERATED",
                ".. BEGIN GENERATED: a",
                ".. END GENERATED",
            ],
            [(3, "Must not repeat generated block: a")],
        ),
        (
            [".. BEGIN GENERATED: a", ".. BEGIN GENERATED: b"],
            [
                (
                    2,
                    "Must close the generated block of line 1 before "
                    "opening another",
                ),
                (2, "Must close generated block with .. END GENERATED"),
            ],
        ),
    ],
)
def test_checker_validates_generated_blocks(
    check_pep: ModuleType, lines: list[str], expected: list[tuple[int, str]]
) -> None:
    """Regenerated blocks are named, unique, and opened before closed."""
    assert list(check_pep._validate_generated_blocks(lines)) == expected


def test_parser_normalises_body(check_pep: ModuleType) -> None:
    """The body is joined across lines and stops at the left margin."""
    requirements, attempts = check_pep.parse_requirements(
        check_pep.read_lines(GOOD)
    )
    assert attempts == []
    second = requirements[1]
    assert second.id == "R-WIDGET-2"
    assert second.text == (
        "A second widget SHOULD exist, see :ref:`R-WIDGET-1 <r-widget-1>`."
    )
    assert (second.area, second.number, second.level) == (
        "WIDGET",
        2,
        "SHOULD",
    )


# -- gen_requirements -----------------------------------------------------


def test_registry_of_fixture(gen_requirements: ModuleType) -> None:
    """The registry holds every requirement with its fields, in order."""
    registry = gen_requirements.build_registry(GOOD)
    assert registry["pep"] == 9001
    assert registry["spec_version"] == "2.3"
    assert "DO NOT EDIT" in str(registry["comment"])
    assert registry["requirements"] == [
        {
            "id": "R-WIDGET-1",
            "level": "MUST",
            "area": "WIDGET",
            "title": "First widget",
            "text": "A widget MUST exist.",
            "anchor": "r-widget-1",
            "line": 37,
        },
        {
            "id": "R-WIDGET-2",
            "level": "SHOULD",
            "area": "WIDGET",
            "title": "Second widget",
            "text": "A second widget SHOULD exist, see "
            ":ref:`R-WIDGET-1 <r-widget-1>`.",
            "anchor": "r-widget-2",
            "line": 42,
        },
        {
            "id": "R-GADGET-1",
            "level": "MAY",
            "area": "GADGET",
            "title": "Gadgets",
            "text": "A gadget MAY exist; it MUST NOT be blue.",
            "anchor": "r-gadget-1",
            "line": 48,
        },
    ]


def test_generator_refuses_broken_pep(
    gen_requirements: ModuleType,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A PEP with requirement errors produces no registry."""
    output = tmp_path / "requirements.json"
    status = gen_requirements.main(
        ["--pep", str(BAD), "--output", str(output)]
    )
    assert status == 1
    assert not output.exists()
    assert "requirement errors" in capsys.readouterr().err


def test_check_mode_detects_stale_registry(
    gen_requirements: ModuleType,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """--check is 0 right after generating and 1 once the PEP changed."""
    pep = tmp_path / "pep-9001.rst"
    pep.write_text(GOOD.read_text(encoding="utf-8"), encoding="utf-8")
    output = tmp_path / "requirements.json"
    args = ["--pep", str(pep), "--output", str(output)]
    assert gen_requirements.main(args) == 0
    assert gen_requirements.main([*args, "--check"]) == 0
    pep.write_text(
        pep.read_text(encoding="utf-8").replace(
            "A widget MUST exist.", "A widget MUST exist twice."
        ),
        encoding="utf-8",
    )
    capsys.readouterr()
    assert gen_requirements.main([*args, "--check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "is stale" in err[0]


def test_check_mode_detects_missing_registry(
    gen_requirements: ModuleType, tmp_path: Path
) -> None:
    """A registry that was never generated is stale too."""
    args = ["--pep", str(GOOD), "--output", str(tmp_path / "none.json")]
    assert gen_requirements.main([*args, "--check"]) == 1


def test_committed_registry_is_in_sync(gen_requirements: ModuleType) -> None:
    """conformance/requirements.json is what the PEP generates."""
    assert gen_requirements.main(["--check"]) == 0


def test_committed_registry_loads() -> None:
    """The suite's loader reads the committed registry."""
    data = json.loads(REGISTRY.read_text(encoding="utf-8"))
    registry = parse_registry(data)
    assert registry.pep == 9999
    assert registry.spec_version == "2.0"
    assert registry.ids[0] == "R-INDEX-1"
    assert registry["R-FREE-3"].level == "MUST"
    assert len(set(registry.ids)) == len(registry.ids)


# -- the ID rule -----------------------------------------------------------

_ID_RULE_PEP = """\
Intro paragraph.

.. _r-demo-1:

R-DEMO-1 \u2014 Inside a requirement (MUST)
   The implementation MUST do this; it MAY do that.

The key words "MUST" and ``SHOULD`` are mentions, not rules.
An implementation SHOULD NOT do this outside a requirement.

.. c:function:: int Demo(void)

   On success, return ``0``.  On error, set ``SystemError`` and return
   ``-1`` (:ref:`R-DEMO-1 <r-demo-1>`).

   Thread safety: safe from any thread.

.. c:function:: int Other(void)

   On error, set ``ValueError`` and return ``-1``.

.. This comment MAY say anything.

An example::

    /* the callee MUST be called */

.. BEGIN GENERATED: demo

* :ref:`R-DEMO-1 <r-demo-1>` (MUST)

.. END GENERATED
"""


def test_id_rule_reports_keywords_and_api_sentences(
    check_pep: ModuleType,
) -> None:
    """Keywords and API rule sentences outside requirements are errors."""
    lines = _ID_RULE_PEP.splitlines()
    problems = list(check_pep.validate_requirements(lines))
    assert [(line, message.split(":")[0]) for line, message in problems] == [
        (9, "RFC 2119 keyword SHOULD NOT must be inside a requirement"),
        (
            16,
            "API entry's thread-safety sentence must cite the requirement "
            "that states it (",
        ),
        (
            20,
            "API entry's error sentence must cite the requirement that "
            "states it (",
        ),
    ]


@pytest.mark.parametrize(
    ("sentence", "kind"),
    [
        ("Raises ``SystemError`` when *code* is not code.", "error"),
        ("On failure, set an exception and return ``-1``.", "error"),
        ("Returns ``-1`` and sets an exception on failure.", "error"),
        ("Safe to call concurrently with Set.", "thread-safety"),
        ("It is thread-safe.", "thread-safety"),
        ("Callable from any thread.", "thread-safety"),
    ],
)
def test_id_rule_reports_every_api_rule_wording(
    check_pep: ModuleType, sentence: str, kind: str
) -> None:
    """An API rule is caught however it is worded, and an ID clears it."""
    # The first paragraph is the header block, which the rule skips.
    entry = ["Intro.", "", ".. c:function:: int Demo(void)", ""]
    entry.append(f"   {sentence}")
    problems = list(check_pep.validate_requirements(entry))
    assert [
        (line, message.split(" sentence")[0]) for line, message in problems
    ] == [(5, f"API entry's {kind}")]
    cited = [*entry[:4], f"   {sentence} (:ref:`R-DEMO-1 <r-demo-1>`)"]
    assert [
        message
        for _, message in check_pep.validate_requirements(cited)
        if message.startswith("API entry")
    ] == []


def test_id_rule_reports_with_file_and_line(
    check_pep: ModuleType,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The project's PEP with one bare keyword fails with file and line."""
    lines = check_pep.read_lines(PEP)
    target = next(
        n for n, line in enumerate(lines) if line.startswith("Indices are")
    )
    lines[target] = "Indices MUST be " + lines[target][len("Indices are ") :]
    broken = tmp_path / "pep-9999.rst"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, out = _run_checker(check_pep, capsys, broken)
    assert status == 1
    assert out == [
        f"{broken}:{target + 1}: RFC 2119 keyword MUST must be inside a "
        "requirement: give the rule an ID ('R-AREA-n \u2014 Title (LEVEL)') "
        "or reword it"
    ]


def test_compatibility_parts_list_every_requirement_once(
    check_pep: ModuleType,
) -> None:
    """Each requirement is in exactly one part of the Compatibility section.

    The parts are the text between ``.. BEGIN COMPATIBILITY: <part>`` and
    ``.. END COMPATIBILITY``; ``R-X-a to R-X-b`` names a range.
    """
    text = PEP.read_text(encoding="utf-8")
    requirements, _ = check_pep.parse_requirements(text.splitlines())
    known = {req.id for req in requirements}
    parts = _pep_source().compatibility_parts(text)
    assert sorted(parts) == ["behaviour-fixes", "layout-change"]
    listed = [i for ids in parts.values() for i in ids]
    twice = sorted({i for i in listed if listed.count(i) > 1})
    assert not twice, f"requirements in both parts or listed twice: {twice}"
    assert not set(listed) - known, f"unknown IDs: {set(listed) - known}"
    assert not known - set(listed), (
        f"in no part: {sorted(known - set(listed))}"
    )


def test_id_rule_reports_api_sentence_with_file_and_line(
    check_pep: ModuleType,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """An API entry's error sentence that cites no ID fails, with its line."""
    lines = check_pep.read_lines(PEP)
    entry = lines.index(
        ".. c:function:: int PyUnstable_Code_GetExtra(PyObject *code, "
        "Py_ssize_t index, void **extra)"
    )
    start = next(
        n for n in range(entry, len(lines)) if "On success" in lines[n]
    )
    end = next(n for n in range(start, len(lines)) if not lines[n].strip())
    lines[start:end] = [
        "   On success, return ``0``.  On error, set ``SystemError`` and",
        "   return ``-1``.",
    ]
    broken = tmp_path / "pep-9999.rst"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, out = _run_checker(check_pep, capsys, broken)
    assert status == 1
    assert out == [
        f"{broken}:{start + 1}: API entry's error sentence must cite the "
        "requirement that states it (:ref:`R-AREA-n <r-area-n>`)"
    ]


# -- one parser of the PEP source -------------------------------------------

#: The one module that may define what the PEP source looks like.
PARSER = REPO / "tools" / "pep_source.py"
#: Folders never scanned: tests hold sample PEP text and expected messages,
#: and build output is not source.
NOT_SOURCE = {"meta_tests", "tests", "build", ".tox", ".venv", "target"}


def _python_sources() -> list[Path]:
    """Return the repository's Python modules but tests and the parser."""
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in NOT_SOURCE)
        found += [Path(folder, f) for f in sorted(files) if f.endswith(".py")]
    return [path for path in found if path != PARSER]


def pep_format_definitions(source: str) -> list[tuple[int, str]]:
    """Return (line, what) for each PEP-format definition in ``source``.

    Two things define the format: a requirement-term pattern (a string
    holding both ``R-`` and the level alternation ``MUST|SHOULD|MAY``) and
    a list of PEP headers (a tuple or list literal naming both ``Title``
    and ``Spec-Version``).
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "R-" in node.value
            and "MUST|SHOULD|MAY" in node.value
        ):
            found.append((node.lineno, "requirement-term pattern"))
        elif isinstance(node, (ast.Tuple, ast.List)):
            names = {
                elt.value
                for elt in node.elts
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str)
            }
            if {"Title", "Spec-Version"} <= names:
                found.append((node.lineno, "PEP header list"))
    return sorted(found)


def test_format_detector_finds_a_second_parser() -> None:
    """The detector below catches the copies the docs extension once had."""
    copy = (
        "import re\n"
        "TERM = re.compile(\n"
        '    r"(?P<id>R-(?P<area>[A-Z]+)-[0-9]+)\\s+\\N{EM DASH}\\s+"\n'
        '    r"(?P<title>.+?)\\s+\\((?P<level>MUST|SHOULD|MAY)\\)"\n'
        ")\n"
        'REQUIRED_HEADERS = ("PEP", "Title", "Author", "Spec-Version")\n'
    )
    assert pep_format_definitions(copy) == [
        (3, "requirement-term pattern"),
        (6, "PEP header list"),
    ]


def test_one_module_parses_the_pep() -> None:
    """Only tools/pep_source.py defines the PEP's terms and headers.

    The checker, the registry generator, the PEP tables generator and the
    docs extension import it; a second definition would let them disagree
    on what a requirement or a complete header is.
    """
    assert pep_format_definitions(PARSER.read_text(encoding="utf-8"))
    copies = []
    for path in _python_sources():
        relative = path.relative_to(REPO)
        source = path.read_text(encoding="utf-8")
        copies += [
            f"{relative}:{line}: {what}"
            for line, what in pep_format_definitions(source)
        ]
    assert not copies, (
        "the PEP source format is defined outside tools/pep_source.py; "
        "import it from there instead: " + "; ".join(copies)
    )


def test_tools_and_docs_use_the_parser() -> None:
    """Each reader of the PEP imports the shared parser."""
    readers = [
        REPO / "tools" / "check_pep.py",
        REPO / "tools" / "gen_requirements.py",
        REPO / "tools" / "gen_pep_tables.py",
        REPO / "docs" / "_ext" / "coextra_docs" / "pep.py",
        REPO / "docs" / "_ext" / "coextra_docs" / "reqs.py",
    ]
    for path in readers:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert "pep_source" in imported, f"{path.name} bypasses pep_source"
