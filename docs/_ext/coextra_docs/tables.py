"""The generated requirement index and conformance matrix.

Both directives leave a placeholder; :class:`GeneratedTables` fills it in
after every document has been read, when the domain knows all
requirements, and before Sphinx resolves cross-references, so that the
links in the tables are ordinary ``pending_xref`` nodes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from sphinx import addnodes
from sphinx.environment import BuildEnvironment
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

from .reports import (
    Expectation,
    Report,
    Verdict,
    build_of,
    column_label,
    report_paths,
    tests_by_requirement,
    untested_builds,
)
from .reqs import Requirement, RequirementDomain
from .state import reports_of

#: How each outcome is spelled in a matrix cell (short, to fit 1280 px).
#: An expected crash reads "crash" too, with its note number.
CELL_TEXT = {
    "pass": "pass",
    "fail": "FAIL",
    "xfail": "xfail",
    "xpass": "XPASS",
    "not-applicable": "n/a",
    "crashed": "crash",
    "error": "error",
    "untested": "\N{EN DASH}",
}


class generated_table(nodes.General, nodes.Element):
    """Placeholder for a table built once all documents are read."""


def results_dir(env: BuildEnvironment) -> Path:
    """Return the folder of committed reports (configuration value)."""
    return Path(env.srcdir, env.config.coextra_results_dir)


class _TableDirective(SphinxDirective):
    """Common part: note the inputs, return the placeholder."""

    kind: ClassVar[str] = ""

    def run(self) -> list[nodes.Node]:
        """Return a placeholder; rebuild the page when a report changes."""
        for path in report_paths(results_dir(self.env)):
            self.env.note_dependency(str(path))
        domain = self.env.domains["coextra"]
        assert isinstance(domain, RequirementDomain)
        domain.generated_docs[self.env.current_document.docname] = True
        node = generated_table(kind=self.kind)
        self.set_source_info(node)
        return [node]


class RequirementsIndexDirective(_TableDirective):
    """``.. coextra-requirements-index::``: every requirement, one row."""

    kind = "index"


class MatrixDirective(_TableDirective):
    """``.. coextra-matrix::``: requirements x implementations."""

    kind = "matrix"


def _text_entry(text: str, classes: Sequence[str] = ()) -> nodes.entry:
    """Return a table cell holding one line of text."""
    entry = nodes.entry(classes=list(classes))
    entry += nodes.paragraph(text, text)
    return entry


def _table(
    widths: Sequence[int], header: Sequence[str], classes: Sequence[str]
) -> tuple[nodes.table, nodes.tbody]:
    """Start a table; return it and the body to append rows to."""
    table = nodes.table(classes=list(classes))
    group = nodes.tgroup(cols=len(widths))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    row = nodes.row()
    for title in header:
        row += _text_entry(title)
    head += row
    group += head
    body = nodes.tbody()
    group += body
    return table, body


def _req_link(
    req: Requirement, docname: str, content: nodes.Node
) -> addnodes.pending_xref:
    """Return a link to a requirement's box in the PEP."""
    ref = addnodes.pending_xref(
        "",
        refdomain="coextra",
        reftype="req",
        reftarget=req.id,
        refexplicit=True,
        refwarn=True,
        refdoc=docname,
    )
    ref += content
    return ref


def _level_badge(level: str) -> nodes.inline:
    """Return the level as a small badge."""
    return nodes.inline(
        level, level, classes=["coextra-level", f"level-{level.lower()}"]
    )


#: The page listing every test with its source (``coextra-tests``).
TESTS_ANCHOR = "tests-{anchor}"


def build_index(
    requirements: Sequence[Requirement],
    reports: Sequence[Report],
    docname: str,
    tests_page: str | None,
) -> list[nodes.Node]:
    """Return the requirement index table.

    The level is a badge beside the ID and the area is the ID's middle
    word, so three columns fit 1280 px with every test name unbroken.
    """
    tests = tests_by_requirement(reports)
    table, body = _table(
        (16, 30, 54),
        ("Requirement", "Title", "Tests (from reports)"),
        ("coextra-index", "coextra-wide", "longtable"),
    )
    for req in requirements:
        row = nodes.row(ids=[f"index-{req.anchor}"])
        id_entry = nodes.entry(classes=["coextra-id-cell"])
        id_entry += nodes.paragraph(
            "",
            "",
            _req_link(req, docname, nodes.literal(req.id, req.id)),
            nodes.Text(" "),
            _level_badge(req.level),
        )
        row += id_entry
        row += _text_entry(req.title)
        tests_entry = nodes.entry(classes=["coextra-tests"])
        # Reports run from a checkout and from an installed package name
        # the same test differently; the file name and test name agree.
        shown = dict.fromkeys(_short_nodeid(n) for n in tests.get(req.id, ()))
        for nodeid in shown:
            text: nodes.Node = nodes.literal(nodeid, nodeid)
            if tests_page is not None:
                text = _page_link(
                    tests_page, TESTS_ANCHOR.format(anchor=req.anchor), text
                )
            tests_entry += nodes.paragraph("", "", text)
        if not tests.get(req.id):
            tests_entry += nodes.paragraph(
                "none recorded", "none recorded", classes=["coextra-none"]
            )
        row += tests_entry
        body += row
    return [table]


def _page_link(
    docname: str, anchor: str, content: nodes.Node
) -> addnodes.pending_xref:
    """Return a link to a label ``anchor`` that a generated page defines."""
    ref = addnodes.pending_xref(
        "",
        refdomain="coextra",
        reftype="anchor",
        reftarget=f"{docname}#{anchor}",
        refexplicit=True,
        refwarn=True,
    )
    ref += content
    return ref


def _short_nodeid(nodeid: str) -> str:
    """Drop the folders of a pytest node ID; the file name stays."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


#: Outcomes whose cell leads to the evidence rather than to the PEP.
_DEVIATING = frozenset({"fail", "xfail", "xpass", "crashed", "error"})

#: The API's name prefixes (``_PyCode_`` up to 3.11, ``PyUnstable_Code_``
#: from 3.12): reasons that differ only there are one note.
_API_PREFIX = re.compile(r"\b(?:_Py|PyUnstable_)(?=(?:Eval|Code)_)")


def _note_key(expectation: Expectation) -> str:
    """Return an expectation's merge key: its reason, API names unified."""
    reason = " ".join(expectation.reason.split())
    return _API_PREFIX.sub("", reason)


def evidence_id(report: Report, req: Requirement) -> str:
    """Return the anchor of one deviation's evidence on the matrix page."""
    return nodes.make_id(f"evidence-{report.key}-{req.anchor}")


def _cell(
    req: Requirement, report: Report, verdict: Verdict, docname: str
) -> nodes.paragraph:
    """One matrix cell: the outcome, linking to its evidence or the PEP."""
    if verdict.crashed:
        text = CELL_TEXT["crashed"]
    else:
        text = CELL_TEXT[verdict.outcome]
    cell = nodes.paragraph()
    label = nodes.inline(text, text)
    if verdict.outcome in _DEVIATING:
        cell += nodes.reference(
            "",
            "",
            label,
            refid=evidence_id(report, req),
            reftitle=f"what {report.label} did ({req.id})",
        )
    else:
        cell += _req_link(req, docname, label)
    return cell


@dataclass
class _Note:
    """One merged reason of the known deviations."""

    number: int
    reason: str
    link: str | None
    where: dict[str, list[str]] = field(default_factory=dict)


def build_matrix(
    requirements: Sequence[Requirement],
    reports: Sequence[Report],
    docname: str,
) -> list[nodes.Node]:
    """Return the matrix, the notes, the evidence and the columns."""
    # Column labels must be unique for the notes' ranges; file names are.
    if not reports:
        text = "No report is committed yet: results/ holds no *.json file."
        return [nodes.paragraph(text, text, classes=["coextra-none"])]
    # The level is the colour of the ID cell's left border, not a column
    # of its own; the title sits under the ID, always visible.
    table, body = _table(
        (22, *(5 for _ in reports)),
        ("Requirement", *(r.label for r in reports)),
        ("coextra-matrix", "coextra-wide"),
    )
    notes: dict[str, _Note] = {}
    area = None
    for req in requirements:
        if req.area != area:
            area = req.area
            body += _area_row(area, 1 + len(reports))
        row = nodes.row()
        id_entry = nodes.entry(
            classes=["coextra-req-cell", f"level-{req.level.lower()}"]
        )
        id_entry += nodes.paragraph(
            "",
            "",
            _req_link(req, docname, nodes.literal(req.id, req.id)),
            nodes.Text(" "),
            nodes.inline(req.title, req.title, classes=["coextra-title"]),
        )
        row += id_entry
        for report in reports:
            verdict = report.verdicts.get(req.id)
            entry = nodes.entry()
            row += entry
            if verdict is None:
                entry["classes"].append("outcome-absent")
                continue
            entry["classes"].append(f"outcome-{verdict.outcome}")
            if verdict.crashed:
                entry["classes"].append("outcome-crash")
            cell = _cell(req, report, verdict, docname)
            if verdict.expectation is not None:
                key = _note_key(verdict.expectation)
                note = notes.get(key)
                if note is None:
                    note = notes[key] = _Note(
                        len(notes) + 1,
                        verdict.expectation.reason,
                        verdict.expectation.link,
                    )
                # The newest version's wording (columns run oldest first).
                note.reason = verdict.expectation.reason
                note.link = note.link or verdict.expectation.link
                note.where.setdefault(req.id, []).append(report.label)
                marker = nodes.reference(
                    "",
                    "",
                    nodes.Text(str(note.number)),
                    refid=f"deviation-{note.number}",
                    reftitle=verdict.expectation.reason,
                )
                cell += nodes.superscript("", "", marker)
            entry += cell
        body += row
    result: list[nodes.Node] = [table]
    if notes:
        labels = [report.label for report in reports]
        result.append(_deviation_notes(list(notes.values()), labels))
    result.append(_evidence(requirements, reports, docname, notes))
    result.extend(_legend(reports))
    return result


def _area_row(area: str, columns: int) -> nodes.row:
    """Return a full-width row starting the requirements of an area."""
    row = nodes.row(classes=["coextra-area"])
    entry = nodes.entry(morecols=columns - 1)
    entry += nodes.paragraph(area, area)
    row += entry
    return row


def _legend(reports: Sequence[Report]) -> list[nodes.Node]:
    """Describe the columns: report, verdict and what each one tested."""
    table, body = _table(
        (10, 22, 22, 14, 32),
        ("Column", "Implementation", "Report", "Verdict", "Outcomes"),
        ("coextra-legend",),
    )
    title = "Columns"
    table.insert(0, nodes.title(title, title))
    # A table with a title is a numbered figure to Sphinx: it needs an id.
    table["ids"].append("matrix-columns")
    for report in reports:
        row = nodes.row()
        row += _text_entry(report.label)
        name = report.name
        if report.version:
            name += " " + report.version
        row += _text_entry(name)
        file_entry = nodes.entry()
        file_name = f"results/{report.path.name}"
        file_entry += nodes.paragraph(
            "", "", nodes.literal(file_name, file_name)
        )
        row += file_entry
        row += _text_entry(report.verdict or "")
        counts: dict[str, int] = {}
        for verdict in report.verdicts.values():
            counts[verdict.outcome] = counts.get(verdict.outcome, 0) + 1
        summary = ", ".join(
            f"{counts[o]} {CELL_TEXT[o]}" for o in CELL_TEXT if o in counts
        )
        row += _text_entry(summary)
        body += row
    return [table, _coverage(reports)]


def _coverage(reports: Sequence[Report]) -> nodes.Node:
    """One line per column: the build and capabilities tested, and not."""
    container = nodes.container(classes=["coextra-coverage"])
    container["ids"].append("matrix-coverage")
    title = "What each column tested"
    container += nodes.rubric(title, title)
    everything = sorted({c for r in reports for c in r.capabilities})
    listing = nodes.bullet_list()
    for report in reports:
        paragraph = nodes.paragraph()
        paragraph += nodes.strong(report.label, report.label)
        name = f" \N{EM DASH} {report.name} {report.version}".rstrip()
        build = build_of(report.key)
        if build is not None:
            name += f", {build}"
        paragraph += nodes.Text(name + ". ")
        tested = [c for c in everything if c in report.capabilities]
        untested = [c for c in everything if c not in report.capabilities]
        paragraph += nodes.Text(
            "Capabilities tested: "
            + (", ".join(tested) or "none beyond the core API")
            + ". "
        )
        paragraph += nodes.Text(
            "Not declared, so their requirements are n/a: "
            + (", ".join(untested) or "none")
            + "."
        )
        item = nodes.list_item()
        item += paragraph
        listing += item
    container += listing
    missing = untested_builds(r.key for r in reports)
    text = (
        "Builds with no report, so not tested: "
        + (", ".join(column_label(k) for k in missing) or "none")
        + ".  Debug builds, other platforms than the one named in each "
        "report and builds with sanitizers (the reference's run under "
        "ASan, UBSan and valgrind is in tox -e asan and -e memcheck) have "
        "no column."
    )
    container += nodes.paragraph(text, text)
    return container


def _runs(labels: Sequence[str], columns: Sequence[str]) -> str:
    """Spell columns that are neighbours in the matrix as a range."""
    positions = sorted(columns.index(label) for label in labels)
    runs: list[list[int]] = []
    for position in positions:
        if runs and position == runs[-1][-1] + 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    spelled = []
    for run in runs:
        first, last = columns[run[0]], columns[run[-1]]
        if len(run) > 2:
            spelled.append(f"{first} \N{EN DASH} {last}")
        else:
            spelled.extend(columns[p] for p in run)
    return ", ".join(spelled)


def _deviation_notes(
    notes: Sequence[_Note], columns: Sequence[str]
) -> nodes.Node:
    """Numbered reasons of the known deviations, with upstream links."""
    container = nodes.container(classes=["coextra-deviations"])
    title = "Known deviations (from the implementers' expectations files)"
    container += nodes.rubric(title, title)
    listing = nodes.enumerated_list(enumtype="arabic")
    for note in notes:
        item = nodes.list_item(ids=[f"deviation-{note.number}"])
        paragraph = nodes.paragraph()
        paragraph += nodes.Text(note.reason)
        if note.link:
            paragraph += nodes.Text(" (")
            paragraph += nodes.reference(
                note.link, note.link, refuri=note.link
            )
            paragraph += nodes.Text(")")
        applies = "; ".join(
            f"{req_id} on {_runs(labels, columns)}"
            for req_id, labels in note.where.items()
        )
        paragraph += nodes.Text(f" Applies to {applies}.")
        item += paragraph
        listing += item
    container += listing
    return container


def _evidence(
    requirements: Sequence[Requirement],
    reports: Sequence[Report],
    docname: str,
    notes: dict[str, _Note],
) -> nodes.Node:
    """Return what the suite observed for every cell that did not pass."""
    container = nodes.container(classes=["coextra-evidence"])
    container["ids"].append("evidence")
    title = "Evidence of each deviation (from the reports)"
    container += nodes.rubric(title, title)
    intro = (
        "Every cell that is not a pass, n/a or untested links here: the "
        "tests of the requirement that did not pass and what each one "
        "reported, as recorded in the column's report."
    )
    container += nodes.paragraph(intro, intro)
    for report in reports:
        for req in requirements:
            verdict = report.verdicts.get(req.id)
            if verdict is None or verdict.outcome not in _DEVIATING:
                continue
            block = nodes.container(classes=["coextra-evidence-item"])
            block["ids"].append(evidence_id(report, req))
            head = nodes.paragraph(classes=["coextra-evidence-head"])
            head += nodes.strong(report.label, report.label)
            head += nodes.Text(" \N{EM DASH} ")
            head += _req_link(req, docname, nodes.literal(req.id, req.id))
            head += nodes.Text(f" {req.title}: ")
            outcome = (
                "crashed" if verdict.crashed else CELL_TEXT[verdict.outcome]
            )
            if verdict.outcome == "xfail":
                outcome += ", as expected"
            head += nodes.strong(outcome, outcome)
            if verdict.expectation is not None:
                note = notes[_note_key(verdict.expectation)]
                head += nodes.Text(" (")
                head += nodes.reference(
                    "",
                    f"note {note.number}",
                    refid=f"deviation-{note.number}",
                )
                head += nodes.Text(")")
            block += head
            if not verdict.evidence:
                text = (
                    "Every test passed, although the expectations file "
                    "lists the requirement as failing."
                    if verdict.outcome == "xpass"
                    else "The report records no message for this requirement."
                )
                block += nodes.paragraph(text, text, classes=["coextra-none"])
            for evidence in verdict.evidence:
                where = _short_nodeid(evidence.nodeid) or "requirement"
                text = f"{where} ({evidence.outcome}):\n{evidence.text}"
                block += nodes.literal_block(text, text, language="text")
            container += block
    return container


class GeneratedTables(SphinxPostTransform):
    """Fill in the placeholders left by the directives."""

    # Before ReferencesResolver (10), which then resolves the links.
    default_priority = 5

    def run(self, **kwargs: Any) -> None:
        """Replace every placeholder of the document."""
        domain = self.env.domains["coextra"]
        assert isinstance(domain, RequirementDomain)
        docname = self.env.current_document.docname
        requirements = domain.ordered()
        reports = reports_of(self.env)
        for node in list(self.document.findall(generated_table)):
            if node["kind"] == "index":
                built = build_index(
                    requirements, reports, docname, domain.page("tests")
                )
            else:
                built = build_matrix(requirements, reports, docname)
            node.replace_self(built)
