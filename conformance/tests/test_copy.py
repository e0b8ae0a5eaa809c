"""Copies: replace() and unmarshal construct new code objects."""

from __future__ import annotations

import pytest

from ..adapter import CO_INLINE_EXTRA, Capability, FreeFunc, Session
from . import helpers as h

pytestmark = [
    pytest.mark.requires(Capability.COPY),
    pytest.mark.parametrize("how", ["replace", "marshal"]),
]


@pytest.mark.req("R-COPY-1")
def test_copy_starts_with_every_slot_null(session: Session, how: str) -> None:
    """Copy starts with every slot NULL."""
    early = session.new_code(session.main, nested=1)
    index = session.request_index(session.main, FreeFunc(1))
    inline = session.new_code(session.main, nested=1)
    for n, code in enumerate((early, inline)):
        session.set_extra(session.main, code, index, 0x10 + n)
        copy = session.copy_code(session.main, code, how)
        h.assert_get(session, session.main, copy, index, 0, "R-COPY-1")
        h.assert_get(session, session.main, code, index, 0x10 + n, "R-COPY-1")
    h.assert_no_frees("copy", "R-COPY-1", session)


@pytest.mark.req("R-COPY-2")
@pytest.mark.requires(Capability.INLINE_FLAG)
def test_copy_gets_inline_storage_iff_consumer(
    session: Session, how: str
) -> None:
    """Copy gets inline storage iff consumer."""
    bare = session.new_code(session.main)
    before = session.copy_code(session.main, bare, how)
    assert not session.co_flags(before) & CO_INLINE_EXTRA, (
        f"{how}() with no consumer active set CO_INLINE_EXTRA (R-COPY-2)"
    )
    session.request_index(session.main, FreeFunc(1))
    after = session.copy_code(session.main, bare, how)
    assert session.co_flags(after) & CO_INLINE_EXTRA, (
        f"{how}() with a consumer active lacks CO_INLINE_EXTRA (R-COPY-2)"
    )


@pytest.mark.req("R-COPY-3")
@pytest.mark.isolated
def test_copy_and_original_are_freed_independently(
    session: Session, how: str
) -> None:
    """Copy and original are freed independently."""
    index = session.request_index(session.main, FreeFunc(1))
    original = session.new_code(session.main)
    session.set_extra(session.main, original, index, 0x31)
    copy = session.copy_code(session.main, original, how)
    session.set_extra(session.main, copy, index, 0x32)
    h.frees(session)
    # Whether a destruction frees its own values is R-FREE-3's question;
    # this one asks that it frees none of the other object's.
    session.drop(original)
    h.assert_frees(
        "code object destruction",
        "R-COPY-3",
        [f for f in h.frees(session) if f[1] == 0x32],
        [],
    )
    h.assert_get(session, session.main, copy, index, 0x32, "R-COPY-3")
    session.drop(copy)
    h.assert_frees(
        "code object destruction",
        "R-COPY-3",
        [f for f in h.frees(session) if f[1] == 0x31],
        [],
    )
