"""Traceability for the PEP 8523 docs site: a small Sphinx extension.

It renders PEP sources with their preamble as a header table
(:mod:`.pep`), turns requirement definition lists into linkable boxes and
adds the ``:req:`` role (:mod:`.reqs`), and generates the requirement
index, the conformance matrix (:mod:`.tables`) and the benchmark page
(:mod:`.bench`) from committed result files.  Configuration values:

``coextra_pep_docs``
    Glob patterns of the documents that are PEPs (``["pep/pep-*"]``).
``coextra_results_dir``
    Folder of committed conformance reports (``"results"``).
``coextra_report_schema``
    The suite's JSON schema of a report
    (``"conformance/report.schema.json"``).
``coextra_benchmarks``
    The committed benchmark results
    (``"benchmarks/results/latest.json"``).
``coextra_benchmarks_schema``
    Their JSON schema (``"benchmarks/results.schema.json"``).

Paths are relative to the folder holding ``conf.py``.
"""

from __future__ import annotations

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util.typing import ExtensionMetadata

from . import bench, mutation, patched, pep, reqs, state, tables

__version__ = "1.0.0"


def _outdated_generated_pages(
    app: Sphinx,
    env: BuildEnvironment,
    added: set[str],
    changed: set[str],
    removed: set[str],
) -> list[str]:
    """Rebuild the generated pages on every build.

    They show requirements read from the PEP and every ``results/*.json``;
    a new report file is no dependency Sphinx knows of, so instead of
    tracking inputs the three pages are simply read again each time.
    """
    domain = env.domains["coextra"]
    assert isinstance(domain, reqs.RequirementDomain)
    return sorted(set(domain.generated_docs) & env.found_docs)


def _on_env_updated(app: Sphinx, env: BuildEnvironment) -> None:
    """Load the result files once every document has been read."""
    state.load_for_build(app, env)
    bench.load_for_build(app, env)


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the extension with Sphinx."""
    app.add_config_value("coextra_pep_docs", ["pep/pep-*"], "env", list)
    app.add_config_value("coextra_results_dir", "results", "env", str)
    app.add_config_value(
        "coextra_report_schema", "conformance/report.schema.json", "env", str
    )
    app.add_config_value(
        "coextra_benchmarks", "benchmarks/results/latest.json", "env", str
    )
    app.add_config_value(
        "coextra_benchmarks_schema",
        "benchmarks/results.schema.json",
        "env",
        str,
    )
    app.add_config_value(
        "coextra_patched_results",
        "implementations/cpython-3.11/results.json",
        "env",
        str,
    )
    app.add_source_parser(pep.PEPAwareParser, override=True)
    app.add_transform(pep.PEPHeaders)
    app.add_transform(reqs.RequirementTransform)
    app.add_domain(reqs.RequirementDomain)
    app.add_role("req", reqs.RequirementRole())
    app.add_enumerable_node(
        reqs.requirement,
        "requirement",
        reqs.requirement_title,
        html=(reqs.visit_requirement_html, reqs.depart_requirement_html),
        latex=(reqs.pass_through, reqs.pass_through),
        text=(reqs.pass_through, reqs.pass_through),
        man=(reqs.pass_through, reqs.pass_through),
        texinfo=(reqs.pass_through, reqs.pass_through),
    )
    app.add_node(tables.generated_table)
    app.add_directive(
        "coextra-requirements-index", tables.RequirementsIndexDirective
    )
    app.add_directive("coextra-matrix", tables.MatrixDirective)
    app.add_directive("coextra-benchmarks", bench.BenchmarksDirective)
    app.add_directive(
        "coextra-patched-cpython", patched.PatchedCPythonDirective
    )
    app.add_directive("coextra-mutation", mutation.MutationDirective)
    app.add_node(bench.benchmark_results)
    app.add_post_transform(tables.GeneratedTables)
    app.add_post_transform(bench.BenchmarkTables)
    app.connect("env-get-outdated", _outdated_generated_pages)
    app.connect("env-updated", _on_env_updated)
    return {
        "version": __version__,
        "env_version": 1,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
