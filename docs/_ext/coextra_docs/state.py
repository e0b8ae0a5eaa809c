"""Load the committed reports once per build and fail on bad ones.

The reports are read after all documents (when the PEP's requirement IDs
are known) and kept beside the environment for the rest of the build;
they are not pickled with it, so every build reads the files again.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import ExtensionError
from sphinx.util import logging

from .reports import Report, load_reports, load_schema, report_paths
from .reqs import RequirementDomain

logger = logging.getLogger(__name__)

_REPORTS: weakref.WeakKeyDictionary[BuildEnvironment, list[Report]] = (
    weakref.WeakKeyDictionary()
)


def reports_of(env: BuildEnvironment) -> list[Report]:
    """Return the reports loaded for this build (empty before loading)."""
    return _REPORTS.get(env, [])


def _relative(env: BuildEnvironment, path: Path) -> str:
    """Spell a path relative to the source folder for messages."""
    try:
        return path.relative_to(env.srcdir).as_posix()
    except ValueError:
        return str(path)


def load_for_build(app: Sphinx, env: BuildEnvironment) -> None:
    """``env-updated``: read and check every report; fail on problems."""
    paths = report_paths(Path(env.srcdir, env.config.coextra_results_dir))
    schema = None
    schema_path = Path(env.srcdir, env.config.coextra_report_schema)
    if paths:
        if schema_path.is_file():
            schema = load_schema(schema_path)
        else:
            logger.warning(
                "report schema %s not found; reports are checked only for "
                "the fields the pages use",
                _relative(env, schema_path),
                type="coextra",
                subtype="schema",
            )
    domain = env.domains["coextra"]
    assert isinstance(domain, RequirementDomain)
    known = set(domain.requirements)
    reports, problems = load_reports(paths, known, schema)
    for problem in problems:
        logger.error(
            "%s: %s",
            problem.entry,
            problem.message,
            location=f"{_relative(env, problem.path)}:{problem.line}",
        )
    if problems:
        bad = sorted({_relative(env, p.path) for p in problems})
        raise ExtensionError(
            f"{len(problems)} problem(s) in conformance reports "
            f"{', '.join(bad)}; the first: {problems[0]}"
        )
    _REPORTS[env] = reports
