"""Two-way coverage between the registry and the conformance tests.

The shipped suite is collected against the model, and the req markers of
the collected tests are compared with the registry: every ID a marker
names exists, and every MUST and SHOULD has at least one test.
"""

from __future__ import annotations

import pytest

from coextra_conformance.requirements import load_registry


@pytest.fixture
def marked_ids(pytester: pytest.Pytester) -> dict[str, list[str]]:
    """Collect the suite; map each requirement ID to its tests."""
    items, recorder = pytester.inline_genitems(
        "--pyargs",
        "coextra_conformance.tests",
        "--coextra-impl=model",
        "-p",
        "no:cacheprovider",
    )
    failed = recorder.getfailedcollections()
    assert not failed, "\n".join(str(r.longrepr) for r in failed)
    assert items, "the suite collected no test"
    tests: dict[str, list[str]] = {}
    for item in items:
        for mark in item.iter_markers("req"):
            for requirement_id in mark.args:
                tests.setdefault(requirement_id, []).append(item.nodeid)
    return tests


def test_every_marked_id_is_in_the_registry(
    marked_ids: dict[str, list[str]],
) -> None:
    """A marker naming an ID that the PEP does not define is a typo."""
    registry = load_registry()
    unknown = {i: t for i, t in marked_ids.items() if i not in registry}
    assert not unknown, f"IDs not in the registry: {unknown}"


@pytest.mark.parametrize("level", ["MUST", "SHOULD"])
def test_every_requirement_has_a_test(
    marked_ids: dict[str, list[str]], level: str
) -> None:
    """Each MUST and SHOULD of the PEP is checked by some test."""
    untested = [
        r.id
        for r in load_registry().requirements
        if r.level == level and r.id not in marked_ids
    ]
    assert not untested, f"{level} requirements without a test: {untested}"
