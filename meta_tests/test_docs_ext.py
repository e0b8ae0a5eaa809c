"""Tests of the docs site's traceability extension (docs/_ext/coextra_docs).

Each Sphinx test builds a small project in a temporary folder: a fixture
PEP with three requirements, optional reports and benchmark results.  The
last tests compile and run the adapter guide's two examples against the
suite.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXT = ROOT / "docs" / "_ext"
EXAMPLES = ROOT / "docs" / "examples"
REPORT_SCHEMA = ROOT / "conformance" / "report.schema.json"
BENCH_SCHEMA = ROOT / "benchmarks" / "results.schema.json"

# The docs dependencies (tox -e docs) are needed for these tests.
sphinx_testing = pytest.importorskip("sphinx.testing.util")
ExtensionError = pytest.importorskip("sphinx.errors").ExtensionError

sys.path.insert(0, str(EXT))
# Imported after the path is set: the extension is not an installed package.
from coextra_docs import reports  # noqa: E402

PEP = """\
PEP: 9999
Title: A fixture PEP
Author: Somebody
Status: Draft
Type: Standards Track
Created: 01-Jan-2026
Requires: 523
Python-Version: 3.16
Spec-Version: 1.0


Abstract
========

Refers to :req:`R-STORE-2`, to :ref:`r-store-1` and to
:c:func:`PyDemo_Get`.

Specification
=============

.. c:function:: int PyDemo_Get(PyObject *code)

   Read it.

.. _r-store-1:

R-STORE-1 — Unset slot reads NULL (MUST)
   Get MUST return ``NULL``; the string ``"MUST"`` stays literal.

.. _r-store-2:

R-STORE-2 — Round trip (SHOULD)
   Get SHOULD NOT change anything and MAY be called twice.

.. _r-index-1:

R-INDEX-1 — Distinct indices (MUST)
   Two requests MUST NOT return the same index.
"""

INDEX = """\
Fixture
=======

.. toctree::

   pep/pep-9999
   docs/requirements
   docs/matrix
   docs/benchmarks
"""

CONF = """\
import sys
sys.path.insert(0, {ext!r})
extensions = ["coextra_docs"]
include_patterns = ["index.rst", "pep/*.rst", "docs/*.rst"]
nitpicky = True
nitpick_ignore = [("c:identifier", "PyObject")]
html_theme = "basic"
coextra_report_schema = {schema!r}
coextra_benchmarks_schema = {bench_schema!r}
"""

IDS = ("R-STORE-1", "R-STORE-2", "R-INDEX-1")

Build = Callable[..., tuple[Path, str]]


def make_report(
    name: str,
    outcomes: dict[str, str],
    expectations: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return a report in the suite's format (report.schema.json)."""
    levels = {"R-STORE-1": "MUST", "R-STORE-2": "SHOULD", "R-INDEX-1": "MUST"}
    counts = dict.fromkeys(reports.OUTCOMES, 0)
    entries = []
    for req_id, outcome in outcomes.items():
        entry: dict[str, Any] = {
            "id": req_id,
            "level": levels.get(req_id, "MUST"),
            "title": "a title",
            "area": req_id.split("-")[1],
            "outcome": outcome,
            "tests": [
                {
                    "nodeid": "conformance/tests/test_store.py::"
                    f"test_{req_id.lower().replace('-', '_')}",
                    "outcome": "passed",
                    "duration": 0.001,
                }
            ],
        }
        if expectations and req_id in expectations:
            entry["expectation"] = expectations[req_id]
        entries.append(entry)
    return {
        "pep": 9999,
        "spec_version": "1.0",
        "suite_version": "1.0.0",
        "implementation": {"name": name, "version": "1", "capabilities": []},
        "requirements": entries,
        "summary": {
            "MUST": counts,
            "SHOULD": counts,
            "MAY": counts,
            "verdict": "conformant",
        },
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Write a fixture Sphinx project using the extension."""
    (tmp_path / "pep").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "pep" / "pep-9999.rst").write_text(PEP, encoding="utf-8")
    (tmp_path / "index.rst").write_text(INDEX, encoding="utf-8")
    pages = {
        "requirements": ".. coextra-requirements-index::",
        "matrix": ".. coextra-matrix::",
        "benchmarks": ".. coextra-benchmarks::",
    }
    for name, directive in pages.items():
        title = name.capitalize()
        (tmp_path / "docs" / f"{name}.rst").write_text(
            f"{title}\n{'=' * len(title)}\n\n{directive}\n", encoding="utf-8"
        )
    (tmp_path / "conf.py").write_text(
        CONF.format(
            ext=str(EXT),
            schema=str(REPORT_SCHEMA),
            bench_schema=str(BENCH_SCHEMA),
        ),
        encoding="utf-8",
    )
    return tmp_path


def write_json(path: Path, data: object) -> None:
    """Write a JSON file, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


@pytest.fixture
def build(project: Path) -> Build:
    """Build the fixture project; return the output folder and warnings."""

    def run(**overrides: Any) -> tuple[Path, str]:
        warnings = io.StringIO()
        # SphinxTestApp undoes the global registrations of each build, so
        # that several builds can run in one process.
        app = sphinx_testing.SphinxTestApp(
            "html",
            srcdir=project,
            builddir=project / "_build",
            confoverrides=overrides,
            status=io.StringIO(),
            warning=warnings,
            freshenv=True,
        )
        try:
            app.build()
        finally:
            app.cleanup()
        return project / "_build" / "html", warnings.getvalue()

    return run


def read(out: Path, page: str) -> str:
    """Return the HTML of one built page."""
    return (out / f"{page}.html").read_text(encoding="utf-8")


# -- reports, without Sphinx ------------------------------------------------


def test_report_unknown_requirement_names_file_and_entry(
    tmp_path: Path,
) -> None:
    """An ID the PEP lacks is a problem naming the file and the entry."""
    path = tmp_path / "rust.json"
    write_json(
        path, make_report("rust", {"R-STORE-1": "pass", "R-NOPE-1": "fail"})
    )
    report, problems = reports.parse_report(path, IDS, None)
    assert report is not None
    assert [str(p) for p in problems] == [
        "rust.json: requirements[1] (R-NOPE-1): names a requirement that "
        "the PEP does not define"
    ]
    assert problems[0].line > 1, "the line of the entry is located"


def test_report_schema_mismatch_is_a_problem(tmp_path: Path) -> None:
    """A report that breaks the suite's schema is a problem."""
    data = make_report("x", {"R-STORE-1": "pass"})
    data["requirements"][0]["outcome"] = "passed"
    path = tmp_path / "x.json"
    write_json(path, data)
    schema = reports.load_schema(REPORT_SCHEMA)
    _, problems = reports.parse_report(path, IDS, schema)
    messages = [str(p) for p in problems]
    assert any(
        "requirements[0] (R-STORE-1)" in m and "schema" in m for m in messages
    ), messages


def test_report_reads_outcomes_tests_and_expectation(tmp_path: Path) -> None:
    """Outcome, test node IDs and expectation are read per requirement."""
    expectation = {"reason": "known", "link": None, "outcome": "fail"}
    path = tmp_path / "cpython-3.12.json"
    write_json(
        path,
        make_report(
            "cpython", {"R-STORE-1": "xfail"}, {"R-STORE-1": expectation}
        ),
    )
    schema = reports.load_schema(REPORT_SCHEMA)
    report, problems = reports.parse_report(path, IDS, schema)
    assert problems == []
    assert report is not None
    verdict = report.verdicts["R-STORE-1"]
    assert verdict.outcome == "xfail"
    assert verdict.expectation == reports.Expectation("known", None)
    assert verdict.tests == (
        "conformance/tests/test_store.py::test_r_store_1",
    )
    assert report.label == "3.12"


def test_columns_follow_the_matrix_order(tmp_path: Path) -> None:
    """Known implementations come first in matrix order, others after."""
    for name in ("rust", "zeta", "cpython-3.10", "reference", "cpython-3.9"):
        write_json(tmp_path / f"{name}.json", {})
    order = [p.stem for p in reports.report_paths(tmp_path)]
    assert order == [
        "reference",
        "cpython-3.9",
        "cpython-3.10",
        "rust",
        "zeta",
    ]


# -- the PEP page -------------------------------------------------------------


def test_pep_header_becomes_title_and_table(build: Build) -> None:
    """The preamble becomes the page title and a header field table."""
    out, warnings = build()
    assert warnings == ""
    html = read(out, "pep/pep-9999")
    assert "<h1>PEP 9999 \N{EN DASH} A fixture PEP" in html
    header = re.search(
        r'<dl class="[^"]*pep-header[^"]*">(.*?)</dl>', html, re.S
    )
    assert header is not None, "the preamble is rendered as a field table"
    assert "Standards Track" in header.group(1)
    assert "Title" not in header.group(1), "the title moved to the heading"
    assert "peps.python.org/pep-0523/" in header.group(1)


def test_requirement_box_has_id_level_permalink_keywords(
    build: Build,
) -> None:
    """A requirement is a box with ID, badge, permalink and keywords."""
    out, _ = build()
    html = read(out, "pep/pep-9999")
    box = re.search(
        r'<div class="coextra-req level-should" id="r-store-2">'
        r"(.*?)</div>\s*</div>",
        html,
        re.S,
    )
    assert box is not None, "R-STORE-2 is a box anchored at r-store-2"
    body = box.group(1)
    assert "R-STORE-2" in body
    assert 'class="coextra-level level-should">SHOULD<' in body
    assert 'href="#r-store-2"' in body, "the box has a permalink"
    assert '<strong class="rfc2119">SHOULD NOT</strong>' in body
    assert '<strong class="rfc2119">MAY</strong>' in body
    # A keyword inside a literal stays literal.
    assert '<span class="pre">&quot;MUST&quot;</span>' in html


def test_req_role_links_to_the_box(build: Build) -> None:
    """:req: links to the requirement's anchor."""
    out, _ = build()
    html = read(out, "pep/pep-9999")
    assert re.search(r'<a class="reference internal" href="#r-store-2"', html)
    # A plain :ref: to the label shows the ID and title.
    assert "R-STORE-1 \N{EM DASH} Unset slot reads NULL</span></a>" in html


def test_unknown_req_role_warns(build: Build, project: Path) -> None:
    """An unknown ID in :req: is a (nitpicky) warning."""
    page = project / "docs" / "requirements.rst"
    page.write_text(page.read_text() + "\nSee :req:`R-STORE-99`.\n")
    _, warnings = build()
    assert "coextra:req reference target not found: R-STORE-99" in warnings


def test_requirement_without_label_warns(build: Build, project: Path) -> None:
    """A requirement without its label is a warning."""
    pep = project / "pep" / "pep-9999.rst"
    pep.write_text(pep.read_text().replace(".. _r-index-1:\n", ""))
    _, warnings = build()
    assert "R-INDEX-1 must be a definition list of its own" in warnings


def test_malformed_requirement_term_warns(build: Build, project: Path) -> None:
    """A term with a hyphen instead of the em dash is a warning."""
    pep = project / "pep" / "pep-9999.rst"
    pep.write_text(pep.read_text().replace("R-INDEX-1 —", "R-INDEX-1 -"))
    _, warnings = build()
    assert "malformed requirement term 'R-INDEX-1 - Distinct" in warnings


def test_requirements_outside_the_pep_stay_plain(
    build: Build, project: Path
) -> None:
    """Only PEP documents get requirement boxes."""
    page = project / "docs" / "requirements.rst"
    page.write_text(
        page.read_text() + "\nR-STORE-9 — Example (MUST)\n   Text MUST.\n"
    )
    out, warnings = build()
    assert warnings == ""
    html = read(out, "docs/requirements")
    assert "<dt>R-STORE-9 — Example (MUST)</dt>" in html
    assert "coextra-req " not in html


def test_level_missing_from_text_warns(build: Build, project: Path) -> None:
    """A requirement whose text never says its level is a warning."""
    pep = project / "pep" / "pep-9999.rst"
    pep.write_text(pep.read_text().replace("MUST NOT return", "never returns"))
    _, warnings = build()
    assert "R-INDEX-1 is MUST but its text never says MUST" in warnings


def test_missing_preamble_field_warns(build: Build, project: Path) -> None:
    """A PEP without a required preamble field is a warning."""
    pep = project / "pep" / "pep-9999.rst"
    pep.write_text(pep.read_text().replace("Spec-Version: 1.0\n", ""))
    _, warnings = build()
    assert "PEP preamble lacks the required 'Spec-Version' field" in warnings


# -- generated pages --------------------------------------------------------


def test_index_lists_requirements_and_tests(
    build: Build, project: Path
) -> None:
    """The index lists every requirement with the tests from reports."""
    write_json(
        project / "results" / "reference.json",
        make_report("reference", dict.fromkeys(IDS, "pass")),
    )
    out, warnings = build()
    assert warnings == ""
    html = read(out, "docs/requirements")
    ids = re.findall(r'<span class="pre">(R-[A-Z]+-\d+)</span>', html)
    assert ids == list(IDS), "PEP order"
    assert "test_store.py::test_r_store_2" in html
    assert 'href="../pep/pep-9999.html#r-index-1"' in html


def test_index_without_reports_says_none_recorded(build: Build) -> None:
    """Without reports the index says no test is recorded."""
    out, _ = build()
    assert read(out, "docs/requirements").count("none recorded") == 3


def test_matrix_has_a_column_per_report_only(
    build: Build, project: Path
) -> None:
    """Columns exist for committed reports only; deviations are noted."""
    link = "https://github.com/python/cpython/issues/96187"
    write_json(
        project / "results" / "cpython-3.12.json",
        make_report(
            "cpython",
            {"R-STORE-1": "xfail", "R-STORE-2": "pass", "R-INDEX-1": "fail"},
            {
                "R-STORE-1": {
                    "reason": "garbage for a negative index",
                    "link": link,
                    "outcome": "fail",
                }
            },
        ),
    )
    write_json(
        project / "results" / "reference.json",
        make_report("reference", dict.fromkeys(IDS, "pass")),
    )
    out, warnings = build()
    assert warnings == ""
    html = read(out, "docs/matrix")
    matrix = html.split('class="coextra-matrix')[1].split("</table>")[0]
    heads = re.findall(r'<th class="head"><p>([^<]*)</p>', matrix)
    assert heads == ["Requirement", "Ref.", "3.12"]
    assert 'class="outcome-fail"' in matrix
    # The ID cell and the passing cell lead to the PEP; the xfail cell
    # leads to its evidence.
    assert matrix.count('href="../pep/pep-9999.html#r-store-1"') == 2
    assert 'href="#evidence-cpython-3-12-r-store-1"' in matrix
    assert 'href="#deviation-1"' in matrix
    assert "Unset slot reads NULL" in matrix, "titles are visible"
    deviations = html.split('class="coextra-deviations')[1]
    assert "garbage for a negative index" in deviations
    assert f'href="{link}"' in deviations
    assert "Applies to R-STORE-1 on 3.12." in deviations


def test_matrix_shows_crashes_evidence_and_coverage(
    build: Build, project: Path
) -> None:
    """Expected crashes read as crashes; notes merge; evidence is linked."""
    expectations = {
        "R-STORE-1": {
            "reason": "_PyCode_GetExtra reads garbage",
            "link": None,
            "outcome": "fail",
        },
        "R-INDEX-1": {
            "reason": "the interpreter dies",
            "link": None,
            "outcome": "crashed",
        },
    }
    for minor in (11, 12, 13):
        report = make_report(
            "cpython",
            {"R-STORE-1": "xfail", "R-STORE-2": "pass", "R-INDEX-1": "xfail"},
            expectations,
        )
        if minor >= 12:
            report["requirements"][0]["expectation"]["reason"] = (
                "PyUnstable_Code_GetExtra reads garbage"
            )
        report["implementation"]["capabilities"] = ["hooks"]
        failing = report["requirements"][0]["tests"][0]
        failing["outcome"] = "failed"
        failing["message"] = (
            f"AssertionError: slot read 0x{minor} on 3.{minor}"
        )
        crashed = report["requirements"][2]["tests"][0]
        crashed["outcome"] = "crashed"
        write_json(project / "results" / f"cpython-3.{minor}.json", report)
    reference = make_report("reference", dict.fromkeys(IDS, "pass"))
    reference["implementation"]["capabilities"] = ["hooks", "threads"]
    write_json(project / "results" / "reference.json", reference)
    out, warnings = build()
    assert warnings == ""
    html = read(out, "docs/matrix")
    matrix = html.split('class="coextra-matrix')[1].split("</table>")[0]
    # R-INDEX-1's expected crash is a crash cell, not an amber xfail.
    assert matrix.count("outcome-crash") == 3
    assert ">crash<" in matrix
    # One note for the three spellings of the same reason, newest text.
    notes = html.split('class="coextra-deviations')[1]
    assert notes.count("reads garbage") == 1
    assert "PyUnstable_Code_GetExtra reads garbage" in notes
    assert "R-STORE-1 on 3.11 \N{EN DASH} 3.13" in notes
    # The cell's evidence: the failing test's message.
    evidence = html.split('id="evidence-cpython-3-13-r-store-1"')[1]
    assert "slot read 0x13 on 3.13" in evidence.split("</pre>")[0]
    assert "crashed, as expected" in html
    # A line per column: capabilities tested and not; builds not tested.
    coverage = html.split('id="matrix-coverage"')[1]
    assert "Capabilities tested: hooks." in coverage
    assert "n/a: threads." in coverage
    assert "3.13t" in coverage.split("Builds with no report")[1]


def test_structured_evidence_is_preferred(tmp_path: Path) -> None:
    """A test's ``evidence`` field wins over its failure message."""
    report = make_report("cpython", {"R-STORE-1": "fail"})
    test = report["requirements"][0]["tests"][0]
    test["outcome"] = "failed"
    test["message"] = "the message"
    test["evidence"] = {"expected": "NULL", "observed": "0x10"}
    path = tmp_path / "cpython-3.12.json"
    write_json(path, report)
    parsed, problems = reports.parse_report(path, IDS, None)
    assert problems == []
    assert parsed is not None
    (found,) = parsed.verdicts["R-STORE-1"].evidence
    assert found.text == "expected: NULL\nobserved: 0x10"


@pytest.mark.parametrize(
    ("keys", "labels"),
    [
        (
            [
                "rust",
                "cpython-3.13t-pep",
                "cpython-3.14",
                "cpython-3.13t",
                "reference",
                "cpython-3.13-pep",
                "cpython-3.13",
                "cpython-3.9",
                "zeta",
            ],
            [
                "Ref.",
                "3.9",
                "3.13",
                "3.13t",
                "3.14",
                "Rust",
                "3.13 +PEP",
                "3.13t +PEP",
                "zeta",
            ],
        ),
    ],
)
def test_any_report_gets_an_ordered_column(
    keys: list[str], labels: list[str]
) -> None:
    """New versions and builds get a column in a sensible place."""
    ordered = sorted(keys, key=reports.column_order)
    assert [reports.column_label(k) for k in ordered] == labels
    assert reports.untested_builds(keys) == ["cpython-3.14t"]


def test_matrix_without_reports_has_no_table(build: Build) -> None:
    """Without reports there is no matrix, and the page says why."""
    out, _ = build()
    html = read(out, "docs/matrix")
    assert "coextra-matrix" not in html
    assert "No report is committed yet" in html


def test_report_with_unknown_requirement_fails_the_build(
    build: Build, project: Path
) -> None:
    """A report naming an unknown ID stops the build."""
    write_json(
        project / "results" / "rust.json",
        make_report("rust", {"R-STORE-1": "pass", "R-GONE-7": "pass"}),
    )
    with pytest.raises(ExtensionError) as caught:
        build()
    message = str(caught.value)
    assert "results/rust.json" in message
    assert "requirements[1] (R-GONE-7)" in message


def test_report_not_matching_schema_fails_the_build(
    build: Build, project: Path
) -> None:
    """A report that breaks the schema stops the build."""
    data = make_report("reference", {"R-STORE-1": "pass"})
    del data["summary"]
    write_json(project / "results" / "reference.json", data)
    with pytest.raises(ExtensionError) as caught:
        build()
    assert "reference.json" in str(caught.value)
    assert "'summary' is a required property" in str(caught.value)


# -- benchmarks --------------------------------------------------------------


def bench_results() -> dict[str, Any]:
    """Benchmark results of the shape benchmarks/run.py writes."""
    names = (
        "raw_load",
        "reference_get_inline",
        "reference_get_fallback",
        "reference_set",
        "reference_set_free",
        "cpython_get",
        "cpython_set",
        "c_hash_get",
        "py_dict_get",
        "py_weakkeydict_get",
        "hook_create_overhead",
    )
    return {
        "machine": {
            "cpu": "test",
            "cores": 2,
            "python": "3.11",
            "compiler": "gcc",
            "cflags": ["-O2"],
            "date": "2026-01-01",
            "quick": True,
        },
        "cases": [
            {
                "name": name,
                "ns_min": 1.0 + i,
                "ns_median": 1.5 + i,
                "ratio_to_raw_load": 1.0 + i,
                "kind": "python" if name.startswith("py_") else "c",
            }
            for i, name in enumerate(names)
        ],
        "instructions": [{"name": "raw_load", "count": 7.0}],
        "memory": [
            {
                "implementation": "reference",
                "consumers": c,
                "bytes_per_code": b,
            }
            for c, b in ((0, 0), (1, 40), (4, 64))
        ],
        "stdlib": [
            {"design": d, "consumers": c, "code_objects": 10, "extra_bytes": b}
            for d, c, b in (
                ("always_present_pointer", 0, 80),
                ("side_hash_table", 0, 0),
                ("flag_gated_trailing_field", 0, 0),
                ("flag_gated_trailing_field", 1, 400),
            )
        ],
        "targets": {
            "reference_get_inline_vs_raw_load": {
                "target": 1.5,
                "measured": 2.0,
                "met": False,
            }
        },
    }


def test_benchmark_page_has_plots_and_tables(
    build: Build, project: Path
) -> None:
    """The benchmark page has its three plots and the targets."""
    write_json(
        project / "benchmarks" / "results" / "latest.json", bench_results()
    )
    out, warnings = build()
    assert warnings == ""
    html = read(out, "docs/benchmarks")
    for plot in ("cases", "memory", "stdlib"):
        image = out / "_images" / f"coextra-bench-{plot}.png"
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="../_images/coextra-bench-{plot}.png"' in html
    assert "reference_get_inline_vs_raw_load" in html
    assert "<p>NO</p>" in html, "a missed target is shown as missed"


def test_benchmark_file_not_matching_schema_fails_the_build(
    build: Build, project: Path
) -> None:
    """Benchmark results that break their schema stop the build."""
    data = bench_results()
    del data["cases"][3]["ns_min"]
    write_json(project / "benchmarks" / "results" / "latest.json", data)
    with pytest.raises(ExtensionError) as caught:
        build()
    message = str(caught.value)
    assert "latest.json" in message
    assert "reference_set" in message


def test_no_benchmark_file_says_so(build: Build) -> None:
    """Without results the benchmark page says so."""
    out, _ = build()
    assert "No benchmark results" in read(out, "docs/benchmarks")


# -- the adapter guide's examples ---------------------------------------------


class _Table(ctypes.Structure):
    """The head of coextra_table, enough to check the ABI fields."""

    _fields_ = (
        ("abi_version", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("version", ctypes.c_char_p),
        ("capabilities", ctypes.c_uint32),
    )


@pytest.fixture(scope="module")
def minimal_impl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/examples/minimal_impl.c compiled into a shared library."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler (gcc) on PATH")
    library = tmp_path_factory.mktemp("minimal") / "minimal_impl.so"
    command = [
        compiler,
        "-shared",
        "-fPIC",
        "-O2",
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-I",
        str(ROOT / "conformance" / "abi"),
        "-o",
        str(library),
        str(EXAMPLES / "minimal_impl.c"),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return library


def test_minimal_impl_exports_a_valid_table(minimal_impl: Path) -> None:
    """The C example exports a table of the current ABI version."""
    header = (ROOT / "conformance" / "abi" / "coextra_abi.h").read_text()
    version = re.search(r"#define COEXTRA_ABI_VERSION (\d+)", header)
    assert version is not None
    library = ctypes.CDLL(str(minimal_impl))
    library.coextra_get_table.restype = ctypes.POINTER(_Table)
    table = library.coextra_get_table().contents
    assert table.abi_version == int(version.group(1))
    assert table.name == b"minimal-example"
    # Compare-and-exchange and the live-block count.
    bits = 0
    for name in ("COMPARE_EXCHANGE", "LIVE_BLOCKS"):
        found = re.search(
            rf"#define COEXTRA_CAP_{name} \(1u << (\d+)\)", header
        )
        assert found is not None
        bits |= 1 << int(found.group(1))
    assert table.capabilities == bits


def run_suite(
    impl: str, tmp_path: Path, extra_path: str = ""
) -> dict[str, Any]:
    """Run the storage, index and free tests; return the JSON report."""
    report = tmp_path / "report.json"
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (extra_path, env.get("PYTHONPATH", "")) if p
        )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--pyargs",
        "coextra_conformance.tests.test_store",
        "coextra_conformance.tests.test_index",
        "coextra_conformance.tests.test_free",
        f"--coextra-impl={impl}",
        f"--coextra-report={report}",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return result


def _outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["outcome"] for r in report["requirements"]}


#: Requirements the examples meet, and one whose capability they lack.
EXAMPLE_PASSES = ("R-STORE-1", "R-STORE-2", "R-STORE-6", "R-FREE-1")
EXAMPLE_NOT_APPLICABLE = "R-INDEX-7"


def test_minimal_impl_passes_the_suite(
    minimal_impl: Path, tmp_path: Path
) -> None:
    """The C example passes the suite's storage, index and free tests."""
    pytest.importorskip("coextra_conformance.plugin")
    report = run_suite(str(minimal_impl), tmp_path)
    outcomes = _outcomes(report)
    assert report["implementation"]["name"] == "minimal-example"
    for requirement in EXAMPLE_PASSES:
        assert outcomes[requirement] == "pass", requirement
    assert outcomes[EXAMPLE_NOT_APPLICABLE] == "not-applicable"


def test_minimal_adapter_passes_the_suite(tmp_path: Path) -> None:
    """The Python example passes the same tests."""
    pytest.importorskip("coextra_conformance.plugin")
    report = run_suite(
        "minimal_adapter:implementation", tmp_path, str(EXAMPLES)
    )
    outcomes = _outcomes(report)
    assert report["implementation"]["name"] == "minimal-python-example"
    for requirement in EXAMPLE_PASSES:
        assert outcomes[requirement] == "pass", requirement
    assert outcomes[EXAMPLE_NOT_APPLICABLE] == "not-applicable"


# -- the patched interpreter's figures ------------------------------------

PATCHED_RESULTS = (
    ROOT / "implementations" / "cpython-3.13" / "results" / "measure.json"
)


def test_patched_figures_render_the_committed_file() -> None:
    """Sizes, stdlib bytes and speed ratios come from results.json."""
    from coextra_docs import patched

    data = json.loads(PATCHED_RESULTS.read_text(encoding="utf-8"))
    sections = patched.build_sections(data, PATCHED_RESULTS)
    text = "\n".join(section.astext() for section in sections)
    sizes = data["small_code_sizeof"]
    assert str(sizes["patched"]["no_consumer"]) in text
    assert str(sizes["baseline"]["no_consumer"]) in text
    ratio = data["import_seconds"]["ratio_patched_over_baseline"]
    assert f"{ratio:.4f}" in text


def test_patched_figures_missing_entry_names_file_and_entry(
    tmp_path: Path,
) -> None:
    """A results file without an expected entry fails naming both."""
    from coextra_docs import patched

    data = json.loads(PATCHED_RESULTS.read_text(encoding="utf-8"))
    del data["small_code_sizeof"]["baseline"]
    path = tmp_path / "results.json"
    with pytest.raises(ExtensionError) as info:
        patched.build_sections(data, path)
    assert str(info.value).startswith(
        "results.json: small_code_sizeof.baseline: missing"
    )


# -- pages generated from the sources ---------------------------------------

SUITE_TEST = '''\
import pytest

pytestmark = pytest.mark.req("R-INDEX-1")


@pytest.mark.req("R-STORE-1")
def test_unset_reads_null():
    """The first fixture test."""
    assert True


def helper():
    return 1
'''

C_SOURCE = """\
/* Storage of the fixture.
   R-STORE-1 */
static int
demo_get(void)
{
    /* Never reads garbage (R-INDEX-1). */
    return 0;
}

/* Section header: R-STORE-2 */

/* The setter. */
static int
demo_set(void)
{
    return 0;
}
"""


def _source_pages(project: Path) -> None:
    """Add the four source pages and the files they read."""
    pages = {
        "tests": ".. coextra-tests::",
        "source": ".. coextra-c-source::",
        "api": ".. coextra-api::",
        "patches": ".. coextra-patch-series::",
    }
    for name, directive in pages.items():
        title = name.capitalize()
        (project / "docs" / f"{name}.rst").write_text(
            f"{title}\n{'=' * len(title)}\n\n{directive}\n", encoding="utf-8"
        )
    index = project / "index.rst"
    index.write_text(
        index.read_text() + "".join(f"   docs/{name}\n" for name in pages)
    )
    tests = project / "conformance" / "tests"
    tests.mkdir(parents=True)
    (tests / "test_fixture.py").write_text(SUITE_TEST, encoding="utf-8")
    src = project / "reference_impl" / "src"
    src.mkdir(parents=True)
    (src / "demo.c").write_text(C_SOURCE, encoding="utf-8")
    for version, names in (("3.12", ("0001-old.patch",)), ("3.13", ())):
        folder = project / "implementations" / f"cpython-{version}"
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_text(
                f"diff --git a/x b/x\n+{version}\n", encoding="utf-8"
            )


def test_source_pages_link_requirements_to_tests_and_c_lines(
    build: Build, project: Path
) -> None:
    """Boxes link to their tests and C lines; those pages hold them."""
    _source_pages(project)
    out, warnings = build()
    assert warnings == ""
    pep = read(out, "pep/pep-9999")
    assert 'href="../docs/tests.html#tests-r-store-1"' in pep
    assert 'href="../docs/source.html#impl-r-store-1"' in pep
    tests = read(out, "docs/tests")
    block = tests.split('id="tests-r-store-1"')[1].split('id="tests-')[0]
    assert "test_unset_reads_null" in block
    assert "The first fixture test." in block
    # The module's pytestmark counts for every test of the module.
    assert "test_unset_reads_null" in tests.split('id="tests-r-index-1"')[1]
    assert (
        "No test of the suite names" in tests.split('id="tests-r-store-2"')[1]
    )
    source = read(out, "docs/source")
    # The comment above demo_get cites R-STORE-1: the link is the function.
    impl = source.split('id="impl-r-store-1"')[1].split('id="impl-')[0]
    assert 'href="#demo-c-L-4"' in impl
    assert "demo_get()" in impl
    # A citation inside the body links to its own line.
    impl = source.split('id="impl-r-index-1"')[1].split('id="impl-')[0]
    assert 'href="#demo-c-L-6"' in impl
    assert 'id="demo-c-L-6"' in source
    # A header comment, then the function's own comment: the function.
    impl = source.split('id="impl-r-store-2"')[1].split('id="impl-')[0]
    assert 'href="#demo-c-L-14"' in impl
    assert "demo_set()" in impl
    api = read(out, "docs/api")
    assert "PyDemo_Get" in api
    assert "Read it." in api


def test_patch_series_prefers_the_first_folder_with_patches(
    build: Build, project: Path
) -> None:
    """The first folder of ``coextra_patch_dirs`` holding a series wins."""
    _source_pages(project)
    folders = ["implementations/cpython-3.13", "implementations/cpython-3.12"]
    out, _ = build(coextra_patch_dirs=folders)
    assert "0001-old.patch" in read(out, "docs/patches")
    new = project / "implementations" / "cpython-3.13" / "0001-new.patch"
    new.write_text("diff --git a/y b/y\n+3.13\n", encoding="utf-8")
    out, _ = build(coextra_patch_dirs=folders)
    html = read(out, "docs/patches")
    assert "0001-new.patch" in html
    assert "0001-old.patch" not in html
