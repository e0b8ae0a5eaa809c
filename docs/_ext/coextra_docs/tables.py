"""The generated requirement index and conformance matrix.

Both directives leave a placeholder; :class:`GeneratedTables` fills it in
after every document has been read, when the domain knows all
requirements, and before Sphinx resolves cross-references, so that the
links in the tables are ordinary ``pending_xref`` nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from sphinx import addnodes
from sphinx.environment import BuildEnvironment
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

from .reports import Report, report_paths, tests_by_requirement
from .reqs import Requirement, RequirementDomain
from .state import reports_of

#: How each outcome is spelled in a matrix cell (short, to fit 1280 px).
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


def build_index(
    requirements: Sequence[Requirement],
    reports: Sequence[Report],
    docname: str,
) -> list[nodes.Node]:
    """Return the requirement index table."""
    tests = tests_by_requirement(reports)
    table, body = _table(
        (12, 8, 8, 30, 42),
        ("ID", "Level", "Area", "Title", "Tests (from reports)"),
        ("coextra-index", "longtable"),
    )
    for req in requirements:
        row = nodes.row(ids=[f"index-{req.anchor}"])
        id_entry = nodes.entry()
        id_entry += nodes.paragraph(
            "", "", _req_link(req, docname, nodes.literal(req.id, req.id))
        )
        row += id_entry
        level_entry = nodes.entry()
        level_entry += nodes.paragraph("", "", _level_badge(req.level))
        row += level_entry
        row += _text_entry(req.area)
        row += _text_entry(req.title)
        tests_entry = nodes.entry(classes=["coextra-tests"])
        # Reports run from a checkout and from an installed package name
        # the same test differently; the file name and test name agree.
        shown = dict.fromkeys(_short_nodeid(n) for n in tests.get(req.id, ()))
        for nodeid in shown:
            tests_entry += nodes.paragraph(
                "", "", nodes.literal(nodeid, nodeid)
            )
        if not tests.get(req.id):
            tests_entry += nodes.paragraph(
                "none recorded", "none recorded", classes=["coextra-none"]
            )
        row += tests_entry
        body += row
    return [table]


def _short_nodeid(nodeid: str) -> str:
    """Drop the folders of a pytest node ID; the file name stays."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def build_matrix(
    requirements: Sequence[Requirement],
    reports: Sequence[Report],
    docname: str,
) -> list[nodes.Node]:
    """Return the legend, the matrix and the list of known deviations."""
    if not reports:
        text = "No report is committed yet: results/ holds no *.json file."
        return [nodes.paragraph(text, text, classes=["coextra-none"])]
    # The level is the colour of the ID cell's left border, not a column
    # of its own: thirteen columns must fit 1280 px.
    table, body = _table(
        (12, *(6 for _ in reports)),
        ("Requirement", *(r.label for r in reports)),
        ("coextra-matrix",),
    )
    notes: dict[tuple[str, str | None], int] = {}
    note_rows: list[tuple[int, str, str | None, list[tuple[str, str]]]] = []
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
            "", "", _req_link(req, docname, nodes.literal(req.id, req.id))
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
            cell = nodes.paragraph()
            text = CELL_TEXT[verdict.outcome]
            cell += _req_link(req, docname, nodes.inline(text, text))
            if verdict.expectation is not None:
                key = (verdict.expectation.reason, verdict.expectation.link)
                if key not in notes:
                    notes[key] = len(notes) + 1
                    note_rows.append((notes[key], key[0], key[1], []))
                number = notes[key]
                note_rows[number - 1][3].append((report.label, req.id))
                marker = nodes.reference(
                    "",
                    "",
                    nodes.Text(str(number)),
                    refid=f"deviation-{number}",
                    reftitle=verdict.expectation.reason,
                )
                cell += nodes.superscript("", "", marker)
            entry += cell
        body += row
    result: list[nodes.Node] = [table]
    if note_rows:
        result.append(_deviation_notes(note_rows))
    result.append(_legend(reports))
    return result


def _area_row(area: str, columns: int) -> nodes.row:
    """Return a full-width row starting the requirements of an area."""
    row = nodes.row(classes=["coextra-area"])
    entry = nodes.entry(morecols=columns - 1)
    entry += nodes.paragraph(area, area)
    row += entry
    return row


def _legend(reports: Sequence[Report]) -> nodes.table:
    """Describe the columns: file, implementation and verdict of each."""
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
    return table


def _deviation_notes(
    note_rows: Sequence[tuple[int, str, str | None, list[tuple[str, str]]]],
) -> nodes.Node:
    """Numbered reasons of the known deviations, with upstream links."""
    container = nodes.container(classes=["coextra-deviations"])
    title = "Known deviations (from the implementers' expectations files)"
    container += nodes.rubric(title, title)
    listing = nodes.enumerated_list(enumtype="arabic")
    for number, reason, link, where in note_rows:
        item = nodes.list_item(ids=[f"deviation-{number}"])
        paragraph = nodes.paragraph()
        paragraph += nodes.Text(reason)
        if link:
            paragraph += nodes.Text(" (")
            paragraph += nodes.reference(link, link, refuri=link)
            paragraph += nodes.Text(")")
        by_column: dict[str, list[str]] = {}
        for label, req_id in where:
            by_column.setdefault(label, []).append(req_id)
        applies = "; ".join(
            f"{label}: {', '.join(ids)}" for label, ids in by_column.items()
        )
        paragraph += nodes.Text(f". Applies to {applies}.")
        item += paragraph
        listing += item
    container += listing
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
                built = build_index(requirements, reports, docname)
            else:
                built = build_matrix(requirements, reports, docname)
            node.replace_self(built)
