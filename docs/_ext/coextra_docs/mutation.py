"""The mutation score of the suite on the running page.

``.. coextra-mutation::`` shows ``tools/mutation/score.json``, which
``tox -e mutation`` (``tools/mutation/run.py``) measures and ``tox -e
regen`` commits: how many mutants of the reference's C
were generated, sampled and killed, the score with its 95 % interval, and
every mutant that was not killed with the reason.  A missing file is said
on the page; a file that lacks an entry fails the build naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

from .bench import _rows_table

#: Entries the summary needs, each an int or a number.
SUMMARY = (
    "mutants_generated",
    "examined",
    "dropped_does_not_compile",
    "dropped_same_object",
    "sample",
    "killed",
    "equivalent",
    "harness",
    "survived",
    "score",
    "ci95",
)


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _where(mutant: dict[str, Any]) -> str:
    """Return ``file:line`` of a mutant (``line N`` in one-file results)."""
    if "file" in mutant:
        return f"{mutant['file']}:{mutant['line']}"
    return f"line {mutant['line']}"


def build(data: dict[str, Any], path: Path) -> list[nodes.Node]:
    """Return a summary paragraph and the table of mutants not killed."""
    missing = [key for key in SUMMARY if key not in data]
    if missing:
        raise ExtensionError(
            f"{path.name}: {', '.join(missing)}: missing; regenerate the "
            f"file with tox -e mutation"
        )
    low, high = data["ci95"]
    text = (
        f"{data['mutants_generated']} mutants generated; of "
        f"{data['examined']} examined in a seeded random order, "
        f"{data['dropped_does_not_compile']} did not compile and "
        f"{data['dropped_same_object']} compiled to the original object. "
        f"Of the {data['sample']} sampled, {data['killed']} were killed, "
        f"{data['equivalent']} are equivalent and {data['harness']} change "
        f"only the test harness; {data['survived']} were not caught. "
        f"Score: {_percent(data['score'])} "
        f"(95 % interval {_percent(low)} to {_percent(high)})."
    )
    result: list[nodes.Node] = [nodes.paragraph(text, text)]
    rows = [
        {
            "mutant": _where(m),
            "change": f"{m['original'].strip()} => {m['mutated'].strip()}",
            "status": m["status"],
            "reason": m.get("reason", ""),
        }
        for m in data.get("mutants", [])
        if m.get("status") != "killed"
    ]
    if rows:
        result.append(
            _rows_table(
                rows,
                (
                    ("mutant", "Where"),
                    ("change", "Change"),
                    ("status", "Status"),
                    ("reason", "Why"),
                ),
            )
        )
    return result


class MutationDirective(SphinxDirective):
    """``.. coextra-mutation::``: the committed mutation score."""

    def run(self) -> list[nodes.Node]:
        """Read tools/mutation/score.json and return its summary."""
        path = Path(self.env.srcdir, "tools", "mutation", "score.json")
        self.env.note_dependency(str(path))
        if not path.is_file():
            text = "No mutation results are committed (tox -e mutation)."
            return [nodes.paragraph(text, text, classes=["coextra-none"])]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            message = f"{path.name}: not valid JSON: {exc}"
            raise ExtensionError(message) from exc
        return build(data, path)
