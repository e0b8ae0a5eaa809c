"""Render PEP sources the way the PEPs site does.

A PEP file starts with an RFC 2822 style preamble (``PEP: 9999``,
``Title: ...``) instead of a reST title.  Plain reST would turn those lines
into one paragraph, so PEP documents (``coextra_pep_docs`` patterns) are
parsed with docutils' RFC 2822 initial state, which reads the preamble as
a field list.  :class:`PEPHeaders` then gives the page its title ("PEP
9999", an en dash, the title), keeps the preamble as a header table under
it, links PEP numbers in the fields that hold them, and nests the PEP's
sections under the title so that the page is one entry in the table of
contents.  The required headers are those of ``tools/pep_source.py``,
the one definition of the PEP source format.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from docutils import nodes
from sphinx.parsers import RSTParser
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

from pep_source import PEP_LIST_HEADERS, REQUIRED_HEADERS

logger = logging.getLogger(__name__)


def is_pep_doc(docname: str, patterns: list[str]) -> bool:
    """Tell whether a document is a PEP source."""
    return any(fnmatch.fnmatchcase(docname, pattern) for pattern in patterns)


def _is_pep_document(document: nodes.document) -> bool:
    """Tell whether the document being read is a PEP source."""
    env = getattr(document.settings, "env", None)
    if env is None:  # docutils without Sphinx
        return False
    docname = env.current_document.docname
    return is_pep_doc(docname, env.config.coextra_pep_docs)


class PEPAwareParser(RSTParser):
    """The reST parser, reading a PEP preamble as an RFC 2822 header."""

    def parse(self, inputstring: Any, document: nodes.document) -> None:
        """Parse one document, choosing the initial state by its name."""
        pep = _is_pep_document(document)
        # The state names are docutils' own (parsers/rst/states.py).
        self.initial_state = "RFC2822Body" if pep else "Body"
        super().parse(inputstring, document)


class PEPHeaders(SphinxTransform):
    """Turn the preamble of a PEP document into its title and header."""

    # Before docutils' DocInfo (340), which would otherwise take the
    # leading field list for bibliographic data that Sphinx then drops.
    default_priority = 330

    def apply(self, **kwargs: Any) -> None:
        """Rebuild the top of a PEP document."""
        docname = self.env.current_document.docname
        if not is_pep_doc(docname, self.config.coextra_pep_docs):
            return
        header = next(iter(self.document.findall(nodes.field_list)), None)
        if header is None or "rfc2822" not in header["classes"]:
            logger.warning(
                "PEP document has no preamble (PEP:, Title:, ...)",
                location=docname,
            )
            return
        fields = self._fields(header)
        for name in REQUIRED_HEADERS:
            if name not in fields:
                logger.warning(
                    "PEP preamble lacks the required %r field",
                    name,
                    location=header,
                )
        for name in PEP_LIST_HEADERS:
            if name in fields:
                self._link_peps(fields[name])
        number = fields.get("PEP")
        title = fields.get("Title")
        heading = "PEP"
        if number is not None:
            heading += " " + number.astext().strip()
        if title is not None:
            heading += " \N{EN DASH} " + title.astext().strip()
        # Like the PEPs site: the number and title are in the heading, so
        # the header table leaves them out.
        for name in ("PEP", "Title"):
            if name in fields:
                field = fields[name].parent
                assert field is not None
                header.remove(field)
        header["classes"].append("pep-header")
        self._nest_under_title(header, heading)

    @staticmethod
    def _fields(header: nodes.field_list) -> dict[str, nodes.field_body]:
        """Map each preamble field name to its body."""
        fields = {}
        for field in header.findall(nodes.field):
            name = field[0].astext().strip()
            body = field[1]
            assert isinstance(body, nodes.field_body)
            fields[name] = body
        return fields

    def _link_peps(self, body: nodes.field_body) -> None:
        """Replace a list of PEP numbers by links to those PEPs."""
        text = body.astext()
        numbers = [n for n in re.split(r"[\s,]+", text) if n]
        if not numbers or not all(n.isdigit() for n in numbers):
            return
        base = self.document.settings.pep_base_url.rstrip("/")
        paragraph = nodes.paragraph()
        for position, number in enumerate(numbers):
            if position:
                paragraph += nodes.Text(", ")
            uri = f"{base}/pep-{int(number):04d}/"
            paragraph += nodes.reference(number, number, refuri=uri)
        body.children = []
        body += paragraph

    def _nest_under_title(
        self, header: nodes.field_list, heading: str
    ) -> None:
        """Make one top section holding the header and the whole PEP."""
        section = nodes.section(classes=["pep"])
        section["ids"].append("pep-title")
        section += nodes.title(heading, heading)
        document = self.document
        header_index = document.index(header)
        # Targets and comments before the preamble stay where they are.
        body = list(document.children[header_index:])
        document.children = document.children[:header_index]
        for node in body:
            node.parent = None
            section += node
        document += section
        # Sections nested one level deeper keep their ids; docutils
        # derives heading levels from the nesting when writing.
        document.set_id(section)
