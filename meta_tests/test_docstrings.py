"""Test docstrings say what a test does; the PEP says what is required.

A conformance test names its requirements in its ``req`` marker, and the
report links each ID to the PEP's text.  A docstring that restates that
text, verbatim or in other words, drifts from it as the PEP changes, so
these checks keep the suite's docstrings free of it: no RFC 2119
keywords, no quoted passages, no run of words taken from a requirement,
and no requirement ID that the registry (generated from the PEP) lacks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from coextra_conformance.requirements import load_registry

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "conformance" / "tests"

#: Words of a docstring that may not appear, in the same order, in a
#: requirement's text: longer runs are a quotation or a paraphrase.
SHARED_RUN = 6
#: The keywords of normative text (RFC 2119), in capitals.
NORMATIVE = re.compile(r"\b(MUST|SHALL|SHOULD|REQUIRED|RECOMMENDED)\b")
#: A double-quoted passage of four words or more.
QUOTED = re.compile(r'"[^"\n]*(?:\s+\S+){3,}[^"]*"')
REQUIREMENT_ID = re.compile(r"\bR-[A-Z]+-\d+\b")
_WORD = re.compile(r"[a-z0-9_*]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("``", ""))


def _runs(words: list[str]) -> set[tuple[str, ...]]:
    return {
        tuple(words[i : i + SHARED_RUN])
        for i in range(len(words) - SHARED_RUN + 1)
    }


def suite_docstrings() -> Iterator[tuple[str, str]]:
    """Yield (test id, docstring) for every test function of the suite."""
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef)
            ) and node.name.startswith("test_"):
                name = f"{path.name}::{node.name}"
                yield name, ast.get_docstring(node) or ""


def problems(docstring: str, requirement_texts: list[str]) -> list[str]:
    """Return what is wrong with one test docstring."""
    found = []
    keyword = NORMATIVE.search(docstring)
    if keyword:
        found.append(f"normative keyword {keyword.group()!r}")
    quote = QUOTED.search(docstring)
    if quote:
        found.append(f"quoted passage {quote.group()!r}")
    runs = _runs(_words(docstring))
    for text in requirement_texts:
        shared = runs & _runs(_words(text))
        if shared:
            found.append(
                f"words taken from a requirement: {' '.join(min(shared))!r}"
            )
            break
    return found


def test_no_docstring_restates_the_pep() -> None:
    """No test docstring quotes or paraphrases a requirement's text."""
    registry = load_registry()
    texts = [r.text for r in registry.requirements]
    found = [
        f"{name}: {problem}"
        for name, docstring in suite_docstrings()
        for problem in problems(docstring, texts)
    ]
    assert not found, (
        "say what the test does and let its req marker name the "
        "requirement; the PEP's text is linked from the report:\n"
        + "\n".join(found)
    )


def test_every_cited_id_exists() -> None:
    """A requirement ID in a test docstring names a requirement."""
    known = set(load_registry().ids)
    dead = [
        f"{name}: {rid}"
        for name, docstring in suite_docstrings()
        for rid in REQUIREMENT_ID.findall(docstring)
        if rid not in known
    ]
    assert not dead, "unknown requirement IDs:\n" + "\n".join(dead)


@pytest.mark.parametrize(
    "docstring",
    [
        "Set MUST keep the value.",
        'R-STORE-2: "after a successful Set the value is returned".',
        "Calls the free function exactly once with the old value.",
    ],
)
def test_restatements_are_found(docstring: str) -> None:
    """Each kind of restatement is caught."""
    text = (
        "Overwriting a non-NULL value with a different value calls the "
        "index's free function exactly once with the old value."
    )
    assert problems(docstring, [text])


def test_a_description_passes() -> None:
    """A docstring that says what the test does is accepted."""
    docstring = (
        "Store on early, inline and out-of-line code objects, then "
        "overwrite each value and count the free calls."
    )
    text = "A free function is never called with NULL."
    assert problems(docstring, [text]) == []
