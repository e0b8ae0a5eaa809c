"""Requirements of the PEP: boxes, the ``:req:`` role and their domain.

In the PEP source a requirement is a label and a one-item definition
list::

    .. _r-store-2:

    R-STORE-2 — Round trip (MUST)
       ... MUST ...

:class:`RequirementTransform` replaces such a list by a
:class:`requirement` node (a styled box with the ID, a level badge, a
permalink and the RFC 2119 keywords in bold) and records the requirement
in :class:`RequirementDomain`, which resolves ``:req:`R-STORE-2``` and
feeds the generated index and matrix.  What a term is (and which words
are RFC 2119 keywords) comes from ``tools/pep_source.py``, the one
definition of the PEP source format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, NamedTuple

from docutils import nodes
from sphinx import addnodes
from sphinx.builders import Builder
from sphinx.domains import Domain, ObjType
from sphinx.environment import BuildEnvironment
from sphinx.roles import XRefRole
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxRole
from sphinx.util.nodes import make_refnode
from sphinx.util.typing import RoleFunction
from sphinx.writers.html5 import HTML5Translator

from pep_source import RFC2119_RE, TERM_ATTEMPT_RE, match_term

from .pep import is_pep_doc

logger = logging.getLogger(__name__)

#: Nodes whose text is code or markup, never prose to emphasise.
_NOT_PROSE = (
    nodes.FixedTextElement,
    nodes.literal,
    nodes.raw,
    nodes.reference,
    nodes.strong,
    addnodes.pending_xref,
)


class Requirement(NamedTuple):
    """What the domain records for one requirement."""

    id: str
    level: str
    area: str
    title: str
    docname: str
    anchor: str
    line: int


class requirement(nodes.General, nodes.Element):
    """A requirement box; docutils node classes are lower case."""


def requirement_title(node: nodes.Node) -> str:
    """Return the text a ``:ref:`` to the requirement shows."""
    assert isinstance(node, requirement)
    return f"{node['reqid']} \N{EM DASH} {node['title']}"


def visit_requirement_html(self: HTML5Translator, node: nodes.Element) -> None:
    """Open the box."""
    level = str(node["level"]).lower()
    self.body.append(
        self.starttag(node, "div", CLASS=f"coextra-req level-{level}")
    )


def depart_requirement_html(
    self: HTML5Translator, node: nodes.Element
) -> None:
    """Close the box."""
    self.body.append("</div>\n")


def pass_through(self: nodes.NodeVisitor, node: nodes.Element) -> None:
    """Render only the children (builders other than HTML)."""


def emphasise_keywords(body: nodes.Element) -> None:
    """Wrap each RFC 2119 keyword of the prose in ``strong``."""
    for text in list(body.findall(nodes.Text)):
        parent = text.parent
        if parent is None or _inside(parent, _NOT_PROSE):
            continue
        pieces = RFC2119_RE.split(str(text))
        if len(pieces) == 1:
            continue
        replacement: list[nodes.Node] = []
        for position, piece in enumerate(pieces):
            if position % 2:
                replacement.append(
                    nodes.strong(piece, piece, classes=["rfc2119"])
                )
            elif piece:
                replacement.append(nodes.Text(piece))
        index = parent.index(text)
        parent[index : index + 1] = replacement


def _inside(node: nodes.Node, kinds: tuple[type[nodes.Node], ...]) -> bool:
    """Tell whether ``node`` or one of its ancestors is of ``kinds``."""
    current: nodes.Node | None = node
    while current is not None:
        if isinstance(current, kinds):
            return True
        current = current.parent
    return False


def _level_keyword_present(level: str, body: nodes.Element) -> bool:
    """Tell whether the body says its level ("MUST NOT" counts as MUST)."""
    return any(
        match.group(1).split()[0] == level
        for match in RFC2119_RE.finditer(body.astext())
    )


class RequirementTransform(SphinxTransform):
    """Replace each requirement definition list of a PEP by a box."""

    # After docutils moved each label onto the list that follows it
    # (PropagateTargets, 260) and after PEPHeaders (330); before Sphinx
    # collects labels into the std domain (SphinxDomains, 850).
    default_priority = 400

    def apply(self, **kwargs: Any) -> None:
        """Find and replace the requirement definition lists."""
        docname = self.env.current_document.docname
        if not is_pep_doc(docname, self.config.coextra_pep_docs):
            return
        domain = self.env.domains["coextra"]
        assert isinstance(domain, RequirementDomain)
        for dlist in list(self.document.findall(nodes.definition_list)):
            for item in list(dlist.children):
                assert isinstance(item, nodes.definition_list_item)
                term = item[0].astext().strip()
                match = match_term(term)
                if match is None:
                    if TERM_ATTEMPT_RE.match(term):
                        logger.warning(
                            "malformed requirement term %r; write "
                            "'R-AREA-n \N{EM DASH} Title (LEVEL)'",
                            term,
                            location=item,
                        )
                    continue
                box = self._make_box(dlist, item, match, docname)
                if box is not None:
                    domain.note_requirement(box, docname)

    def _make_box(
        self,
        dlist: nodes.definition_list,
        item: nodes.definition_list_item,
        match: re.Match[str],
        docname: str,
    ) -> requirement | None:
        """Build the box for one item and put it in place of its list."""
        req_id = match["id"]
        anchor = req_id.lower()
        if len(dlist.children) != 1 or anchor not in dlist["ids"]:
            logger.warning(
                "requirement %s must be a definition list of its own "
                "preceded by the label '.. _%s:'",
                req_id,
                anchor,
                location=item,
            )
            return None
        body = item[-1]
        assert isinstance(body, nodes.definition)
        level = match["level"]
        if not _level_keyword_present(level, body):
            logger.warning(
                "requirement %s is %s but its text never says %s",
                req_id,
                level,
                level,
                location=item,
            )
        box = requirement(
            reqid=req_id,
            level=level,
            area=match["area"],
            title=match["title"],
            ids=list(dlist["ids"]),
            names=list(dlist["names"]),
        )
        box.source, box.line = item.source, item.line
        box += self._head(req_id, level, match["title"], anchor)
        emphasise_keywords(body)
        content = nodes.container(classes=["coextra-req-body"])
        content.extend(body.children)
        box += content
        dlist.replace_self(box)
        # The label now names the box (the std domain looks it up here).
        for node_id in box["ids"]:
            self.document.ids[node_id] = box
        return box

    @staticmethod
    def _head(
        req_id: str, level: str, title: str, anchor: str
    ) -> nodes.paragraph:
        """Return the first line of the box: ID, level, title, link."""
        head = nodes.paragraph(classes=["coextra-req-head"])
        head += nodes.strong(req_id, req_id, classes=["coextra-req-id"])
        head += nodes.Text(" ")
        head += nodes.inline(
            level, level, classes=["coextra-level", f"level-{level.lower()}"]
        )
        head += nodes.Text(" ")
        head += nodes.inline(title, title, classes=["coextra-req-title"])
        permalink = nodes.reference(
            "",
            "\N{PILCROW SIGN}",
            refid=anchor,
            classes=["headerlink"],
            reftitle=f"Link to {req_id}",
        )
        head += permalink
        return head


#: The links under each requirement's title: page kind, anchor, text.
BOX_LINKS = (
    ("tests", "tests-{anchor}", "its tests"),
    ("source", "impl-{anchor}", "reference C lines"),
)


class RequirementLinks(SphinxPostTransform):
    """Link every requirement box to its tests and its C lines.

    Done after all documents are read, so only pages that exist are
    linked; a build without them (the extension's own tests) shows plain
    boxes.
    """

    # Before ReferencesResolver (10), which resolves the links.
    default_priority = 6

    def run(self, **kwargs: Any) -> None:
        """Append the links to the head of every box of the document."""
        domain = self.env.domains["coextra"]
        assert isinstance(domain, RequirementDomain)
        pages = [
            (domain.page(kind), anchor, text)
            for kind, anchor, text in BOX_LINKS
        ]
        present = [(d, a, t) for d, a, t in pages if d is not None]
        if not present:
            return
        for box in self.document.findall(requirement):
            anchor = str(box["reqid"]).lower()
            links = nodes.inline(classes=["coextra-req-links"])
            for position, (docname, pattern, text) in enumerate(present):
                if position:
                    links += nodes.Text(" \N{MIDDLE DOT} ")
                ref = addnodes.pending_xref(
                    "",
                    refdomain="coextra",
                    reftype="anchor",
                    reftarget=f"{docname}#{pattern.format(anchor=anchor)}",
                    refexplicit=True,
                    refwarn=True,
                    refdoc=self.env.current_document.docname,
                )
                ref += nodes.inline(text, text)
                links += ref
            head = next(iter(box.findall(nodes.paragraph)))
            head += links


class RequirementRole(SphinxRole):
    """``:req:`R-STORE-2``` links to the requirement, showing its ID."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        """Return a cross-reference the domain resolves."""
        target = self.text.strip()
        ref = addnodes.pending_xref(
            self.rawtext,
            refdomain="coextra",
            reftype="req",
            reftarget=target.upper(),
            refexplicit=True,
            refwarn=True,
            refdoc=self.env.current_document.docname,
        )
        ref += nodes.inline(
            target, target, classes=["xref", "coextra-req-ref"]
        )
        self.set_source_info(ref)
        return [ref], []


class RequirementDomain(Domain):
    """Where the requirements of the PEP documents are recorded."""

    name = "coextra"
    label = "PEP 9999 requirements"
    # Sphinx reads these class attributes; they are never mutated.
    object_types: ClassVar[dict[str, ObjType]] = {
        "requirement": ObjType("requirement", "req")
    }
    roles: ClassVar[dict[str, RoleFunction | XRefRole]] = {
        "req": RequirementRole()
    }
    #: ``requirements``: ID to Requirement; ``generated``: the documents
    #: holding a generated table (rebuilt whenever anything changes).
    #: ``pages``: the document of each generated page by kind
    #: (``tests``, ``source``), which requirement boxes link to.
    initial_data: ClassVar[dict[str, Any]] = {
        "requirements": {},
        "generated": {},
        "pages": {},
    }
    data_version = 2

    @property
    def requirements(self) -> dict[str, Requirement]:
        """Requirements by ID."""
        found: dict[str, Requirement] = self.data["requirements"]
        return found

    def note_requirement(self, node: requirement, docname: str) -> None:
        """Record one requirement box; warn on a duplicate ID."""
        req_id = node["reqid"]
        other = self.requirements.get(req_id)
        if other is not None:
            logger.warning(
                "duplicate requirement %s, also in %s line %d",
                req_id,
                self.env.doc2path(other.docname),
                other.line,
                location=node,
            )
            return
        self.requirements[req_id] = Requirement(
            id=req_id,
            level=node["level"],
            area=node["area"],
            title=node["title"],
            docname=docname,
            anchor=req_id.lower(),
            line=node.line or 0,
        )

    @property
    def generated_docs(self) -> dict[str, bool]:
        """Documents that show tables generated from other documents."""
        docs: dict[str, bool] = self.data["generated"]
        return docs

    def note_page(self, kind: str, docname: str) -> None:
        """Record that ``docname`` holds the generated page ``kind``."""
        self.data["pages"][kind] = docname

    def page(self, kind: str) -> str | None:
        """Return the document holding the generated page ``kind``."""
        found: str | None = self.data["pages"].get(kind)
        return found

    def ordered(self) -> list[Requirement]:
        """Return the requirements in document order."""
        return sorted(
            self.requirements.values(), key=lambda r: (r.docname, r.line)
        )

    def clear_doc(self, docname: str) -> None:
        """Forget the requirements of a document about to be re-read."""
        for req_id, req in list(self.requirements.items()):
            if req.docname == docname:
                del self.requirements[req_id]
        self.generated_docs.pop(docname, None)
        for kind, page in list(self.data["pages"].items()):
            if page == docname:
                del self.data["pages"][kind]

    def merge_domaindata(
        self, docnames: Iterable[str], otherdata: dict[str, Any]
    ) -> None:
        """Take the requirements a parallel reader found."""
        wanted = set(docnames)
        for req_id, req in otherdata["requirements"].items():
            if req.docname in wanted:
                self.requirements[req_id] = req
        for docname in otherdata["generated"]:
            if docname in wanted:
                self.generated_docs[docname] = True
        for kind, docname in otherdata["pages"].items():
            if docname in wanted:
                self.data["pages"][kind] = docname

    def resolve_xref(
        self,
        env: BuildEnvironment,
        fromdocname: str,
        builder: Builder,
        typ: str,
        target: str,
        node: addnodes.pending_xref,
        contnode: nodes.Element,
    ) -> nodes.reference | None:
        """Link ``:req:`` to the requirement box.

        The type ``anchor`` (``docname#anchor``) is how generated tables
        link to a place on another generated page.
        """
        if typ == "anchor":
            docname, _, anchor = target.partition("#")
            if docname not in env.all_docs:
                return None
            return make_refnode(
                builder, fromdocname, docname, anchor, contnode
            )
        req = self.requirements.get(target.upper())
        if req is None:
            return None
        return make_refnode(
            builder,
            fromdocname,
            req.docname,
            req.anchor,
            contnode,
            f"{req.id} \N{EM DASH} {req.title} ({req.level})",
        )

    def resolve_any_xref(
        self,
        env: BuildEnvironment,
        fromdocname: str,
        builder: Builder,
        target: str,
        node: addnodes.pending_xref,
        contnode: nodes.Element,
    ) -> list[tuple[str, nodes.reference]]:
        """Let ``:any:`` find requirements too."""
        found = self.resolve_xref(
            env, fromdocname, builder, "req", target, node, contnode
        )
        return [] if found is None else [("coextra:req", found)]

    def get_objects(self) -> Iterator[tuple[str, str, str, str, str, int]]:
        """List the requirements for the search index and inventory."""
        for req in self.ordered():
            yield (req.id, req.id, "requirement", req.docname, req.anchor, 1)
