"""Command-line options of the plugin, their parsers, Hypothesis profiles.

Every option lives in the ``coextra`` group and starts with
``--coextra-``.  Each value goes through a small parser that refuses a bad
value with a message saying what to give instead.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ENV_IMPL = "COEXTRA_IMPL"
DEFAULT_DOCS_URL = "docs/_build/html/pep/pep-9999.html"
PROFILES = ("ci", "explore")
ISOLATION_MODES = ("every", "marked")

# Help texts start with a capital letter, end with a full stop and then
# "Default: ..." (one rule for every option, as pytest-benchmark does).


def parse_impl(value: str) -> str:
    """Check the value of --coextra-impl (NAME, module:attr or a path)."""
    value = value.strip()
    if not value:
        raise argparse.ArgumentTypeError(
            "empty implementation: give a registered name, "
            "module:attribute or a library path"
        )
    return value


def parse_report_path(value: str) -> Path:
    """Check the value of --coextra-report: a file to (over)write."""
    path = Path(value)
    if not value or path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{value!r} is a directory: give the path of a .json file"
        )
    return path


def parse_expectations_path(value: str) -> Path:
    """Check the value of --coextra-expectations: an existing file."""
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"expectations file {value!r} not found"
        )
    return path


def parse_docs_url(value: str) -> str:
    """Check the base URL of requirement links (without a fragment)."""
    value = value.strip()
    if not value or "#" in value:
        raise argparse.ArgumentTypeError(
            f"{value!r}: give the URL of the PEP page, without #anchor"
        )
    return value


def parse_profile(value: str) -> str:
    """Check the name of a Hypothesis profile registered by the plugin."""
    if value not in PROFILES:
        raise argparse.ArgumentTypeError(
            f"unknown profile {value!r}: choose one of {', '.join(PROFILES)}"
        )
    return value


def parse_timeout(value: str) -> float:
    """Check the value of --coextra-timeout: seconds, 0 for no limit."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number of seconds: give a positive number, "
            f"or 0 for no limit"
        )
    return seconds


def add_options(parser: pytest.Parser) -> None:
    """Add the --coextra-* options and the suite-path ini setting."""
    group = parser.getgroup("coextra", "PEP 9999 conformance suite")
    group.addoption(
        "--coextra-impl",
        type=parse_impl,
        default=os.environ.get(ENV_IMPL) or None,
        metavar="NAME",
        help="Implementation to test: a registered name, module:attribute "
        "or the path of a shared library exporting the C ABI; falls back "
        f"to ${ENV_IMPL}. Default: %(default)r",
    )
    group.addoption(
        "--coextra-report",
        type=parse_report_path,
        default=None,
        metavar="PATH",
        help="Write the JSON report of the verdicts to PATH. "
        "Default: %(default)r",
    )
    group.addoption(
        "--coextra-expectations",
        type=parse_expectations_path,
        default=None,
        metavar="PATH",
        help="TOML file of expected failures keyed by requirement ID. "
        "Default: %(default)r",
    )
    group.addoption(
        "--coextra-docs-url",
        type=parse_docs_url,
        default=DEFAULT_DOCS_URL,
        metavar="URL",
        help="Page of the PEP that requirement links in the summary point "
        "to. Default: %(default)r",
    )
    group.addoption(
        "--coextra-hypothesis-profile",
        type=parse_profile,
        default="ci",
        metavar="NAME",
        help="Hypothesis profile: 'ci' (derandomized) or 'explore' (more, "
        "random examples). Default: %(default)r",
    )
    group.addoption(
        "--coextra-isolation",
        choices=ISOLATION_MODES,
        default="every",
        help="For in-process implementations: fork 'every' conformance "
        "test (a crash or hang ends that test only) or only those marked "
        "'isolated' (faster; lets a debugger stop inside a test). "
        "Default: %(default)r",
    )
    group.addoption(
        "--coextra-timeout",
        type=parse_timeout,
        default=300.0,
        metavar="SECONDS",
        help="Kill a test of an in-process implementation that runs longer "
        "than SECONDS and report it as timeout; 0 means no limit. "
        "Default: %(default)r",
    )
    parser.addini(
        "coextra_suite_paths",
        type="paths",
        default=[],
        help="Directories of conformance tests besides the shipped suite "
        "(each test there must carry a req marker).",
    )


def register_profiles() -> None:
    """Register the Hypothesis profiles the suite offers."""
    # "ci": the same few examples on every run, so that a verdict is
    # reproducible and a run takes seconds.  No example database in either
    # profile: the suite runs in implementers' trees and leaves nothing.
    settings.register_profile(
        "ci",
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=25,
        stateful_step_count=40,
        suppress_health_check=[HealthCheck.too_slow],
    )
    # "explore": many random examples, to look for new failures.
    settings.register_profile(
        "explore",
        derandomize=False,
        database=None,
        deadline=None,
        max_examples=2000,
        stateful_step_count=100,
        suppress_health_check=[HealthCheck.too_slow],
    )
