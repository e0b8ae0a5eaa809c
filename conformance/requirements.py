"""The requirement registry, read from ``requirements.json``.

``requirements.json`` is generated from the PEP source by
``tools/gen_requirements.py`` (``tox -e regen``); the PEP is the single
source of truth and nobody edits the JSON by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

LEVELS = ("MUST", "SHOULD", "MAY")


@dataclass(frozen=True)
class Requirement:
    """One normative statement of the PEP."""

    id: str
    level: str
    area: str
    title: str
    text: str
    #: The reST label of the requirement in the PEP, e.g. ``r-store-2``.
    anchor: str


@dataclass(frozen=True)
class Registry:
    """Every requirement of one version of the specification."""

    pep: int
    spec_version: str
    requirements: tuple[Requirement, ...]

    def __getitem__(self, requirement_id: str) -> Requirement:
        """Return the requirement with this ID; KeyError if unknown."""
        for requirement in self.requirements:
            if requirement.id == requirement_id:
                return requirement
        raise KeyError(requirement_id)

    def __contains__(self, requirement_id: object) -> bool:
        """Tell whether an ID names a requirement of this registry."""
        return any(r.id == requirement_id for r in self.requirements)

    @property
    def ids(self) -> tuple[str, ...]:
        """All IDs in PEP order."""
        return tuple(r.id for r in self.requirements)


def parse_registry(data: dict[str, object]) -> Registry:
    """Build a :class:`Registry` from the decoded JSON document."""
    raw = data["requirements"]
    if not isinstance(raw, list):
        raise TypeError("requirements.json: requirements is not a list")
    requirements = tuple(
        Requirement(
            id=item["id"],
            level=item["level"],
            area=item["area"],
            title=item["title"],
            text=item["text"],
            anchor=item["anchor"],
        )
        for item in raw
    )
    pep = data["pep"]
    spec_version = data["spec_version"]
    if not isinstance(pep, int) or not isinstance(spec_version, str):
        raise TypeError("requirements.json: pep or spec_version malformed")
    return Registry(pep, spec_version, requirements)


@cache
def load_registry() -> Registry:
    """Return the registry shipped with the suite."""
    text = (
        resources.files(__package__)
        .joinpath("requirements.json")
        .read_text(encoding="utf-8")
    )
    decoded: dict[str, object] = json.loads(text)
    return parse_registry(decoded)
