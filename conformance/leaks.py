"""The leak oracle: an implementation's live heap blocks around each test.

An implementation that declares :attr:`~.adapter.Capability.LIVE_BLOCKS`
tells how many heap blocks it holds (``live_blocks()``; the C ABI's
``live_blocks`` entry, ABI 1.1).  The ``session`` fixture reads the count
before the test opens its session and again after the session is closed:
closing drops every object the test still holds and ends every
interpreter, so anything still allocated beyond the first count is memory
the test's operations leaked, and the test fails, naming its
requirements.  Tests run in a forked child (``isolated``) are checked in
the child, where their operations happened.
"""

from __future__ import annotations

import pytest

from .adapter import Capability, Implementation, Session, live_blocks

#: The count read before the test's session was opened.
BEFORE = pytest.StashKey[int]()


def start(item: pytest.Item, implementation: Implementation) -> None:
    """Read the count before the session opens, if the oracle applies."""
    if Capability.LIVE_BLOCKS in frozenset(implementation.capabilities):
        item.stash[BEFORE] = live_blocks(implementation)


def check(
    item: pytest.Item, implementation: Implementation, requirements: str
) -> None:
    """Fail the test if the count grew; call after the session is closed."""
    before = item.stash.get(BEFORE, None)
    if before is None:
        return
    after = live_blocks(implementation)
    if after > before:
        pytest.fail(
            f"LEAK: {after - before} heap block(s) still allocated after "
            f"the session was closed ({requirements}): {before} live "
            f"before the session opened, {after} after; every block an "
            f"operation allocates must be freed once its objects are "
            f"dropped and its interpreters ended",
            pytrace=False,
        )


def check_isolated(
    item: pytest.Item,
    implementation: Implementation,
    session: Session,
    requirements: str,
) -> None:
    """In a forked child: close the child's session, then check."""
    if item.stash.get(BEFORE, None) is None:
        return
    session.close()
    check(item, implementation, requirements)
