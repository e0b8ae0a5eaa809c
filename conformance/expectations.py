"""Expected failures, read from the implementer's TOML file.

The file is keyed by requirement ID::

    [R-FREE-4]
    reason = "values stored under a NULL free function leak"
    link = "https://github.com/python/cpython/issues/..."   # optional
    outcome = "crashed"                                       # optional

``outcome`` is what the requirement is expected to come out as, ``fail``
(the default) or ``crashed``.  Expectations are strict: a requirement
that passes while expected to fail becomes ``xpass`` and fails the run.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 takes tomli, tomllib's origin
    import tomli as tomllib

#: The outcomes an expectation may name.
EXPECTED_OUTCOMES = ("fail", "crashed")

_KEYS = ("link", "outcome", "reason")


@dataclass(frozen=True)
class Expectation:
    """Why one requirement is expected not to pass."""

    requirement: str
    reason: str
    outcome: str = "fail"
    link: str | None = None


class ExpectationError(Exception):
    """The expectations file is invalid; the message is for the user."""


def load_expectations(
    path: Path, known_ids: Collection[str]
) -> dict[str, Expectation]:
    """Read and check the expectations file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExpectationError(
            f"{path}: cannot read the expectations file "
            f"({exc.strerror or exc}): fix --coextra-expectations"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExpectationError(
            f"{path}: not valid TOML ({exc}): fix the syntax"
        ) from None
    return parse_expectations(data, str(path), known_ids)


def parse_expectations(
    data: Mapping[str, object], source: str, known_ids: Collection[str]
) -> dict[str, Expectation]:
    """Check decoded TOML and return the expectations by requirement ID."""
    result = {}
    for key, entry in data.items():
        where = f"{source}: [{key}]"
        if key not in known_ids:
            close = difflib.get_close_matches(key, list(known_ids), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ExpectationError(
                f"{where}: unknown requirement ID{hint}: use an ID of "
                f"PEP 9999 or remove the entry"
            )
        if not isinstance(entry, dict):
            raise ExpectationError(
                f'{where}: expected a table with reason = "...": write '
                f"the entry as a [{key}] section"
            )
        result[key] = _parse_entry(key, entry, where)
    return result


def _parse_entry(
    key: str, entry: Mapping[str, object], where: str
) -> Expectation:
    for name in entry:
        if name not in _KEYS:
            raise ExpectationError(
                f"{where}: unknown key {name!r}: use only {', '.join(_KEYS)}"
            )
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ExpectationError(
            f'{where}: missing reason: add reason = "why it fails"'
        )
    outcome = entry.get("outcome", "fail")
    if outcome not in EXPECTED_OUTCOMES:
        raise ExpectationError(
            f"{where}: outcome {outcome!r} is not one of "
            f"{', '.join(EXPECTED_OUTCOMES)}: fix or remove it"
        )
    link = entry.get("link")
    if link is not None and not isinstance(link, str):
        raise ExpectationError(f"{where}: link must be a string (a URL)")
    assert isinstance(outcome, str)
    return Expectation(key, reason.strip(), outcome, link)
