"""Pages generated from the repository's sources.

``.. coextra-tests::``
    Every requirement with the suite's tests that name it
    (``@pytest.mark.req(...)`` in ``coextra_tests_dir``), each test's
    source shown in full.  Anchors ``tests-r-free-3``.
``.. coextra-c-source::``
    The reference implementation's C files (``coextra_c_sources``) with an
    anchor on every line, and for every requirement the lines whose
    comments name it (the C cites requirement IDs in its comments; those
    citations are the anchors, so a refactoring that keeps its comments
    keeps its links).  Anchors ``impl-r-free-3``.
``.. coextra-patch-series::``
    The patch series of the patched CPython: the ``*.patch`` files of the
    first folder of ``coextra_patch_dirs`` that has any.
``.. coextra-api::``
    The C API at a glance: every ``c:function`` and ``c:macro`` the PEPs
    define, with its signature, first sentence and the requirements whose
    text names it.

Everything is read again on every build (the pages are in the domain's
``generated_docs``), so the pages cannot fall behind the files.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from sphinx import addnodes
from sphinx.environment import BuildEnvironment
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

from .reqs import Requirement, RequirementDomain, requirement

REQUIREMENT_ID = re.compile(r"\bR-[A-Z]+-[0-9]+\b")


@dataclass(frozen=True)
class SuiteTest:
    """One test function of the suite."""

    path: str
    name: str
    line: int
    source: str
    requirements: tuple[str, ...]

    @property
    def anchor(self) -> str:
        """Anchor of the test on the tests page."""
        return nodes.make_id(f"test-{Path(self.path).stem}-{self.name}")


def _req_ids(node: ast.expr) -> list[str]:
    """Return the IDs of the ``pytest.mark.req(...)`` calls in ``node``."""
    found = []
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "req"
        ):
            for arg in call.args:
                if isinstance(arg, ast.Constant) and isinstance(
                    arg.value, str
                ):
                    found.append(arg.value)
    return found


def read_suite_tests(folder: Path, root: Path) -> list[SuiteTest]:
    """Find every test function and the requirements it is marked with."""
    tests = []
    for path in sorted(folder.glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        module = ast.parse(text)
        lines = text.splitlines()
        module_ids: list[str] = []
        for statement in module.body:
            if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark"
                for t in statement.targets
            ):
                module_ids += _req_ids(statement.value)
        for statement in module.body:
            if not isinstance(
                statement, (ast.FunctionDef, ast.AsyncFunctionDef)
            ) or not statement.name.startswith("test"):
                continue
            ids = list(module_ids)
            for decorator in statement.decorator_list:
                ids += _req_ids(decorator)
            first = min(
                [statement.lineno]
                + [d.lineno for d in statement.decorator_list]
            )
            last = statement.end_lineno or statement.lineno
            tests.append(
                SuiteTest(
                    path=path.relative_to(root).as_posix(),
                    name=statement.name,
                    line=first,
                    source="\n".join(lines[first - 1 : last]),
                    requirements=tuple(dict.fromkeys(ids)),
                )
            )
    return tests


@dataclass(frozen=True)
class Citation:
    """A line of the C sources whose comment names a requirement."""

    path: str
    line: int
    function: str | None


#: A function definition in PEP 7 layout: the name starts the line.
_C_FUNCTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(")


def c_citations(path: Path, root: Path) -> dict[str, list[Citation]]:
    """Map requirement IDs to the lines of one C file that cite them.

    A citation in the comment right above a function (the C lists there
    the requirements the function implements) points at the function's
    first line; one inside a body points at itself.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [
        (number, match[1])
        for number, line in enumerate(lines, 1)
        if (match := _C_FUNCTION.match(line))
    ]
    relative = path.relative_to(root).as_posix()
    found: dict[str, list[Citation]] = {}
    for number, line in enumerate(lines, 1):
        for req_id in REQUIREMENT_ID.findall(line):
            end = number  # the line closing the comment holding the ID
            while end < len(lines) and "*/" not in lines[end - 1]:
                end += 1
            following = [s for s in starts if s[0] > number]
            preceding = [s for s in starts if s[0] <= number]
            if following and _only_comments_between(
                lines, end, following[0][0] - 1
            ):
                # A comment above a function (the return type's line).
                target, function = following[0]
            else:
                target = number
                function = preceding[-1][1] if preceding else None
            citation = Citation(relative, target, function)
            bucket = found.setdefault(req_id, [])
            if citation not in bucket:
                bucket.append(citation)
    return found


def _only_comments_between(lines: list[str], after: int, before: int) -> bool:
    """Tell whether lines ``after`` < n < ``before`` are comments or blank.

    Line numbers are 1-based; a comment may span several lines.
    """
    number = after + 1
    while number < before:
        text = lines[number - 1].strip()
        if text.startswith("/*"):
            while "*/" not in lines[number - 1] and number < before:
                number += 1
        elif text:
            return False
        number += 1
    return number == before


def _line_prefix(path: str) -> str:
    """Return what one file's line anchors start with (``coextra-c-L``)."""
    return nodes.make_id(Path(path).name) + "-L"


def line_anchor(path: str, line: int) -> str:
    """Anchor of one line of a C file on the source page."""
    return f"{_line_prefix(path)}-{line}"


def highlighted_c(path: Path, relative: str) -> str:
    """Return the file as highlighted HTML with an anchor on every line."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import CLexer

    # Each line is a span with its own id, so a link can target a line
    # and the line can be highlighted (:target in coextra.css).
    formatter = HtmlFormatter(
        linenos="inline",
        linespans=_line_prefix(relative),
        cssclass="highlight",
        wrapcode=True,
    )
    body = highlight(path.read_text(encoding="utf-8"), CLexer(), formatter)
    return f'<div class="highlight-c notranslate coextra-c-file">{body}</div>'


class source_page(nodes.General, nodes.Element):
    """Placeholder for a page filled in once the PEP has been read."""


class _PageDirective(SphinxDirective):
    """Record the page in the domain and leave a placeholder."""

    kind: ClassVar[str] = ""

    def run(self) -> list[nodes.Node]:
        """Return the placeholder; the page is rebuilt on every build."""
        domain = self.env.domains["coextra"]
        assert isinstance(domain, RequirementDomain)
        docname = self.env.current_document.docname
        domain.generated_docs[docname] = True
        domain.note_page(self.kind, docname)
        node = source_page(kind=self.kind)
        self.set_source_info(node)
        return [node]


class TestsDirective(_PageDirective):
    """``.. coextra-tests::``: every requirement's tests, with source."""

    kind = "tests"


class CSourceDirective(_PageDirective):
    """``.. coextra-c-source::``: the reference's C, anchored by line."""

    kind = "source"


class ApiDirective(_PageDirective):
    """``.. coextra-api::``: the PEP's C API in one table."""

    kind = "api"


def _req_ref(req: Requirement, content: nodes.Node) -> addnodes.pending_xref:
    ref = addnodes.pending_xref(
        "",
        refdomain="coextra",
        reftype="req",
        reftarget=req.id,
        refexplicit=True,
        refwarn=True,
    )
    ref += content
    return ref


def _req_heading(req: Requirement, anchor: str) -> nodes.paragraph:
    """Return the line opening a requirement's part of a generated page."""
    head = nodes.paragraph(classes=["coextra-page-req"])
    head["ids"].append(anchor)
    head += _req_ref(req, nodes.literal(req.id, req.id))
    head += nodes.Text(f" \N{EM DASH} {req.title} ({req.level})")
    return head


def build_tests_page(
    requirements: Sequence[Requirement], tests: Sequence[SuiteTest]
) -> list[nodes.Node]:
    """Every requirement, then each test that names it with its source."""
    by_req: dict[str, list[SuiteTest]] = {}
    for test in tests:
        for req_id in test.requirements:
            by_req.setdefault(req_id, []).append(test)
    result: list[nodes.Node] = []
    for req in requirements:
        block = nodes.container(classes=["coextra-page-block"])
        block += _req_heading(req, f"tests-{req.anchor}")
        mine = by_req.get(req.id, [])
        if not mine:
            text = "No test of the suite names this requirement."
            block += nodes.paragraph(text, text, classes=["coextra-none"])
        for test in mine:
            where = f"{test.path}, line {test.line}"
            caption = nodes.paragraph(classes=["coextra-test-name"])
            caption += nodes.literal(test.name, test.name)
            caption += nodes.Text(f" ({where})")
            block += caption
            code = nodes.literal_block(
                test.source, test.source, language="python"
            )
            code["linenos"] = True
            code["highlight_args"] = {"linenostart": test.line}
            block += code
        result.append(block)
    return result


def build_source_page(
    requirements: Sequence[Requirement], files: Sequence[Path], root: Path
) -> list[nodes.Node]:
    """Return the cited lines of each requirement, then every file."""
    cited: dict[str, list[Citation]] = {}
    for path in files:
        for req_id, found in c_citations(path, root).items():
            cited.setdefault(req_id, []).extend(found)
    result: list[nodes.Node] = []
    listing = nodes.container(classes=["coextra-page-block"])
    for req in requirements:
        head = _req_heading(req, f"impl-{req.anchor}")
        listing += head
        mine = cited.get(req.id, [])
        if not mine:
            text = "No comment of the reference implementation cites it."
            listing += nodes.paragraph(text, text, classes=["coextra-none"])
            continue
        paragraph = nodes.paragraph(classes=["coextra-c-lines"])
        for position, citation in enumerate(mine):
            if position:
                paragraph += nodes.Text(", ")
            label = f"{Path(citation.path).name}:{citation.line}"
            if citation.function:
                label += f" {citation.function}()"
            paragraph += nodes.reference(
                "",
                "",
                nodes.literal(label, label),
                refid=line_anchor(citation.path, citation.line),
            )
        listing += paragraph
    result.append(listing)
    for path in files:
        relative = path.relative_to(root).as_posix()
        title = nodes.rubric(relative, relative)
        title["ids"].append(nodes.make_id(f"file-{relative}"))
        result.append(title)
        result.append(
            nodes.raw("", highlighted_c(path, relative), format="html")
        )
    return result


@dataclass(frozen=True)
class ApiEntry:
    """One C function or macro of the PEP."""

    name: str
    objtype: str
    signature: str
    summary: str
    requirements: tuple[str, ...]


def _first_sentence(text: str) -> str:
    """Return the first sentence; a bare "New." keeps the next one."""
    sentences = re.split(r"(?<=[.:])\s+", " ".join(text.split()))
    summary = sentences[0]
    if summary == "New." and len(sentences) > 1:
        summary += " " + sentences[1]
    return summary


def read_api(
    env: BuildEnvironment, pep_docs: Sequence[str]
) -> list[tuple[str, ApiEntry]]:
    """Collect the C declarations of the PEP documents, in their order."""
    found: list[tuple[str, ApiEntry]] = []
    for docname in pep_docs:
        doctree = env.get_doctree(docname)
        boxes = [
            (str(box["reqid"]), box.astext())
            for box in doctree.findall(requirement)
        ]
        for desc in doctree.findall(addnodes.desc):
            if (
                desc.get("domain") != "c"
                or desc.get("objtype") not in _C_ROLES
            ):
                continue
            signature = next(iter(desc.findall(addnodes.desc_signature)))
            names = list(signature.findall(addnodes.desc_name))
            name = names[0].astext() if names else signature.astext()
            content = next(iter(desc.findall(addnodes.desc_content)), None)
            first = ""
            if content is not None:
                paragraph = next(iter(content.findall(nodes.paragraph)), None)
                if paragraph is not None:
                    first = _first_sentence(paragraph.astext())
            pattern = re.compile(rf"\b{re.escape(name)}\b")
            reqs = tuple(rid for rid, text in boxes if pattern.search(text))
            entry = ApiEntry(
                name=name,
                objtype=str(desc["objtype"]),
                signature=" ".join(signature.astext().split()),
                summary=first,
                requirements=reqs,
            )
            found.append((docname, entry))
    return found


#: The C domain's role for each kind of declaration.
_C_ROLES = {
    "function": "func",
    "macro": "macro",
    "type": "type",
    "member": "member",
    "var": "var",
}


def build_api_page(
    api: Sequence[tuple[str, ApiEntry]],
    requirements: dict[str, Requirement],
) -> list[nodes.Node]:
    """One table: declaration, what it does, the requirements on it."""
    if not api:
        text = "The PEP declares no C function."
        return [nodes.paragraph(text, text, classes=["coextra-none"])]
    table = nodes.table(classes=["coextra-api", "coextra-wide"])
    group = nodes.tgroup(cols=3)
    table += group
    for width in (45, 35, 20):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    row = nodes.row()
    for title in ("Declaration", "What it does", "Requirements"):
        entry = nodes.entry()
        entry += nodes.paragraph(title, title)
        row += entry
    head += row
    group += head
    body = nodes.tbody()
    group += body
    for _docname, item in api:
        row = nodes.row()
        entry = nodes.entry()
        # The C domain resolves the link to the PEP's entry.
        ref = addnodes.pending_xref(
            "",
            refdomain="c",
            reftype=_C_ROLES[item.objtype],
            reftarget=item.name,
            refexplicit=True,
            refwarn=True,
        )
        ref += nodes.literal(item.signature, item.signature)
        entry += nodes.paragraph("", "", ref)
        row += entry
        entry = nodes.entry()
        entry += nodes.paragraph(item.summary, item.summary)
        row += entry
        entry = nodes.entry(classes=["coextra-api-reqs"])
        paragraph = nodes.paragraph()
        for position, req_id in enumerate(item.requirements):
            if position:
                paragraph += nodes.Text(" ")
            req = requirements[req_id]
            paragraph += _req_ref(req, nodes.literal(req_id, req_id))
        entry += paragraph
        row += entry
        body += row
    return [table]


def c_source_files(env: BuildEnvironment) -> list[Path]:
    """Return the C files the source page shows (``coextra_c_sources``)."""
    root = Path(env.srcdir)
    files: list[Path] = []
    for pattern in env.config.coextra_c_sources:
        files += sorted(root.glob(pattern))
    return files


def patch_files(env: BuildEnvironment) -> list[Path]:
    """Return the patches of the first ``coextra_patch_dirs`` with any."""
    root = Path(env.srcdir)
    for folder in env.config.coextra_patch_dirs:
        found = sorted((root / folder).glob("*.patch"))
        if found:
            return found
    return []


class PatchSeriesDirective(SphinxDirective):
    """``.. coextra-patch-series::``: each patch of the series, in full."""

    def run(self) -> list[nodes.Node]:
        """Read the patches now; the page is re-read on every build."""
        domain = self.env.domains["coextra"]
        assert isinstance(domain, RequirementDomain)
        domain.generated_docs[self.env.current_document.docname] = True
        files = patch_files(self.env)
        if not files:
            folders = ", ".join(self.config.coextra_patch_dirs)
            text = f"No patch series is committed (looked in {folders})."
            return [nodes.paragraph(text, text, classes=["coextra-none"])]
        root = Path(self.env.srcdir)
        result: list[nodes.Node] = []
        folder = files[0].parent.relative_to(root).as_posix()
        intro = f"{len(files)} patches from {folder}/, in the order applied:"
        result.append(nodes.paragraph(intro, intro))
        listing = nodes.enumerated_list(enumtype="arabic")
        for path in files:
            item = nodes.list_item()
            item += nodes.paragraph(
                "",
                "",
                nodes.reference(
                    "",
                    "",
                    nodes.literal(path.name, path.name),
                    refid=nodes.make_id(f"patch-{path.stem}"),
                ),
            )
            listing += item
        result.append(listing)
        for path in files:
            self.env.note_dependency(str(path))
            relative = path.relative_to(root).as_posix()
            title = nodes.rubric(relative, relative)
            title["ids"].append(nodes.make_id(f"patch-{path.stem}"))
            result.append(title)
            text = path.read_text(encoding="utf-8", errors="replace")
            result.append(nodes.literal_block(text, text, language="diff"))
        return result


def _pep_docs(env: BuildEnvironment) -> list[str]:
    from .pep import is_pep_doc

    return sorted(
        d for d in env.found_docs if is_pep_doc(d, env.config.coextra_pep_docs)
    )


def fill(
    node: source_page, env: BuildEnvironment, domain: RequirementDomain
) -> list[nodes.Node]:
    """Build the content of one placeholder."""
    root = Path(env.srcdir)
    requirements = domain.ordered()
    kind = node["kind"]
    if kind == "tests":
        folder = root / env.config.coextra_tests_dir
        return build_tests_page(requirements, read_suite_tests(folder, root))
    if kind == "source":
        return build_source_page(requirements, c_source_files(env), root)
    return build_api_page(read_api(env, _pep_docs(env)), domain.requirements)


class SourcePages(SphinxPostTransform):
    """Fill in the placeholders of the generated source pages."""

    # Before ReferencesResolver (10), which then resolves the links.
    default_priority = 5

    def run(self, **kwargs: Any) -> None:
        """Replace every placeholder of the document."""
        domain = self.env.domains["coextra"]
        assert isinstance(domain, RequirementDomain)
        for node in list(self.document.findall(source_page)):
            node.replace_self(fill(node, self.env, domain))
