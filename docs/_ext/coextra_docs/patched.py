"""The patched interpreter's figures on the benchmark page.

``.. coextra-patched-cpython::`` shows
``implementations/cpython-3.13/results/measure.json``
(``coextra_patched_results``), which that folder's ``measure.py`` writes:
the patched CPython 3.13.15 (default build) against the unpatched build of
the same source.  A file that lacks an expected entry fails the build
naming the file and the entry; a missing file is said on the page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

from .bench import _rows_table, _section

BUILDS = ("patched", "baseline")


def _get(data: Any, path: Path, *keys: str) -> Any:
    """Follow ``keys`` into ``data``; fail naming the missing entry."""
    value = data
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            entry = ".".join(keys[: depth + 1])
            raise ExtensionError(
                f"{path.name}: {entry}: missing; regenerate the file with "
                "implementations/cpython-3.13/measure.py"
            )
        value = value[key]
    return value


def _ratio(value: object) -> str:
    """Spell a ratio to four decimals: they differ from 1 by little."""
    if not isinstance(value, (int, float)):
        raise ExtensionError(f"a ratio must be a number, not {value!r}")
    return f"{value:.4f}"


def build_sections(data: dict[str, Any], path: Path) -> list[nodes.Node]:
    """Return the tables of sizes, standard-library bytes and speed."""
    sizes = [
        {"build": build, **_get(data, path, "small_code_sizeof", build)}
        for build in BUILDS
    ]
    stdlib = []
    for build in BUILDS:
        for state in ("no_consumer", "one_consumer"):
            entry = _get(data, path, "stdlib_compile", build, state)
            stdlib.append({"build": build, "state": state, **entry})
    speed = []
    counts = data.get("instructions")
    if counts is not None:
        for key, label in (
            ("compile_none", "instructions: compile, no consumer"),
            ("compile_one_consumer", "instructions: compile, one consumer"),
            ("import", "instructions: import"),
        ):
            speed.append(
                {
                    "metric": label,
                    "patched": _get(counts, path, "patched", key),
                    "baseline": _get(counts, path, "baseline", key),
                    "ratio": _ratio(_get(counts, path, f"ratio_{key}")),
                }
            )
    seconds = _get(data, path, "compile_stdlib_seconds")
    for state in ("none", "one_consumer"):
        spelled = state.replace("_", " ")
        speed.append(
            {
                "metric": f"seconds (best): compile, {spelled}",
                "patched": _get(seconds, path, f"patched_{state}", "min_s"),
                "baseline": _get(seconds, path, f"baseline_{state}", "min_s"),
                "ratio": _ratio(
                    _get(seconds, path, f"ratio_patched_over_baseline_{state}")
                ),
            }
        )
    imports = _get(data, path, "import_seconds")
    speed.append(
        {
            "metric": "seconds (best): import",
            "patched": _get(imports, path, "patched_min_s"),
            "baseline": _get(imports, path, "baseline_min_s"),
            "ratio": _ratio(
                _get(imports, path, "ratio_patched_over_baseline")
            ),
        }
    )
    return [
        _section(
            "Patched CPython sizes",
            _rows_table(
                sizes,
                (
                    ("build", "Build"),
                    ("basicsize", "tp_basicsize"),
                    ("no_consumer", "sizeof, no consumer"),
                    ("one_consumer", "sizeof, one consumer"),
                    ("one_consumer_value_set", "sizeof, value stored"),
                ),
            ),
        ),
        _section(
            "Patched CPython standard library",
            _rows_table(
                stdlib,
                (
                    ("build", "Build"),
                    ("state", "Consumer"),
                    ("code_objects", "Code objects"),
                    ("sizeof_total", "Total sizeof"),
                    ("beyond_var_size", "Extra-storage bytes"),
                ),
            ),
        ),
        _section(
            "Patched CPython speed",
            _rows_table(
                speed,
                (
                    ("metric", "Measure"),
                    ("patched", "Patched"),
                    ("baseline", "Unpatched"),
                    ("ratio", "Patched / unpatched"),
                ),
            ),
        ),
    ]


class PatchedCPythonDirective(SphinxDirective):
    """``.. coextra-patched-cpython::``: the patched interpreter's figures."""

    def run(self) -> list[nodes.Node]:
        """Read the committed measurements and return their tables."""
        path = Path(self.env.srcdir, self.config.coextra_patched_results)
        self.env.note_dependency(str(path))
        if not path.is_file():
            text = "No measurements of the patched interpreter are committed."
            return [nodes.paragraph(text, text, classes=["coextra-none"])]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ExtensionError(
                f"{path.name}: not valid JSON: {exc}"
            ) from exc
        return build_sections(data, path)
