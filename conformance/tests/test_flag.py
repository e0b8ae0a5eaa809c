"""Zero cost and the CO_INLINE_EXTRA flag."""

from __future__ import annotations

import pytest

from ..adapter import CO_INLINE_EXTRA, ApiError, Capability, FreeFunc, Session
from ..evidence import Deviation
from . import helpers as h


def _flagged(session: Session, code: object) -> bool:
    return bool(session.co_flags(code) & CO_INLINE_EXTRA)


@pytest.mark.req("R-FLAG-1")
@pytest.mark.requires(Capability.STORAGE_SIZE)
def test_no_consumer_means_no_extra_bytes(session: Session) -> None:
    """No consumer means no extra bytes."""
    code = session.new_code(session.main, nested=2)
    for each in (code, *session.nested(code)):
        size = session.extra_bytes(each)
        if size != 0:
            raise Deviation(
                f"a code object constructed with no consumer spends {size} "
                f"bytes on extra storage (R-FLAG-1)",
                requirement="R-FLAG-1",
                function=h.CONSTRUCT,
                expected={"extra_bytes": 0},
                actual={"extra_bytes": size},
            )


@pytest.mark.req("R-FLAG-2")
@pytest.mark.requires(Capability.INLINE_FLAG)
def test_consumer_means_inline_storage_and_flag(session: Session) -> None:
    """Consumer means inline storage and flag."""
    session.request_index(session.main, FreeFunc(1))
    code = session.new_code(session.main, nested=1)
    for each in (code, *session.nested(code)):
        assert _flagged(session, each), (
            "a code object constructed with a consumer active lacks "
            "CO_INLINE_EXTRA (R-FLAG-2)"
        )


@pytest.mark.req("R-FLAG-2", "R-FLAG-6")
@pytest.mark.requires(Capability.INLINE_FLAG, Capability.STORAGE_SIZE)
def test_inline_storage_covers_every_allocated_index(
    session: Session,
) -> None:
    """Inline storage covers every allocated index."""
    indices = [
        session.request_index(session.main, FreeFunc(1)) for _ in range(5)
    ]
    code = session.new_code(session.main)
    size = session.extra_bytes(code)
    assert size >= 8 * len(indices), (
        f"inline storage for {len(indices)} indices takes {size} bytes; "
        f"R-FLAG-2 needs a slot per index"
    )
    for index in indices:
        session.set_extra(session.main, code, index, 0x21 + index)
        assert session.extra_bytes(code) == size, (
            f"{h.SET} on an inline index grew the storage (R-FLAG-6)"
        )


@pytest.mark.req("R-FLAG-6", "R-FLAG-2")
@pytest.mark.requires(Capability.INLINE_FLAG, Capability.ALLOC_FAILURE)
def test_inline_store_does_not_allocate(session: Session) -> None:
    """Inline store does not allocate.

    R-FLAG-6: a Set on an inline slot succeeds even when every allocation
    fails.
    """
    indices = [
        session.request_index(session.main, FreeFunc(1)) for _ in range(3)
    ]
    code = session.new_code(session.main)
    session.fail_allocations(0, 1000)
    try:
        for index in indices:
            try:
                session.set_extra(session.main, code, index, 0x61)
            except ApiError as exc:
                pytest.fail(
                    f"{h.SET} on an inline slot needed memory and failed "
                    f"with {exc.exc_type} (R-FLAG-6)"
                )
    finally:
        session.fail_allocations(0, 0)
    for index in indices:
        h.assert_get(session, session.main, code, index, 0x61, "R-FLAG-6")


@pytest.mark.req("R-FLAG-3")
@pytest.mark.requires(Capability.INLINE_FLAG)
@pytest.mark.isolated
def test_flag_and_query_agree_with_storage(session: Session) -> None:
    """Flag and query agree with storage."""
    bare = session.new_code(session.main)
    forged = session.new_code(session.main, flags=CO_INLINE_EXTRA)
    session.request_index(session.main, FreeFunc(1))
    rich = session.new_code(session.main)
    for code, inline in ((bare, False), (rich, True)):
        assert _flagged(session, code) == inline, (
            f"CO_INLINE_EXTRA must be {inline} (R-FLAG-3)"
        )
        assert session.has_inline_extra(code) == inline, (
            f"{h.HAS_INLINE} must return {int(inline)} (R-FLAG-3)"
        )
    assert _flagged(session, forged) == session.has_inline_extra(forged), (
        f"co_flags and {h.HAS_INLINE} disagree on a code object "
        f"constructed with caller-supplied CO_INLINE_EXTRA (R-FLAG-3)"
    )
    other = session.new_non_code(session.main)
    with h.api_error(h.HAS_INLINE, "SystemError", "R-FLAG-3"):
        session.has_inline_extra(other)


@pytest.mark.req("R-FLAG-4")
def test_out_of_line_storage_serves_unflagged_code(
    session: Session,
) -> None:
    """Out of line storage serves unflagged code."""
    early = session.new_code(session.main, nested=1)
    first = session.request_index(session.main, FreeFunc(1))
    inline = session.new_code(session.main)
    later = session.request_index(session.main, FreeFunc(2))
    cases = [
        (early, first),
        (early, later),
        (inline, later),
        (session.nested(early)[0], first),
    ]
    for n, (code, index) in enumerate(cases):
        session.set_extra(session.main, code, index, 0x41 + n)
    for n, (code, index) in enumerate(cases):
        h.assert_get(session, session.main, code, index, 0x41 + n, "R-FLAG-4")
    session.set_extra(session.main, early, first, 0)
    h.assert_frees(h.SET, "R-FLAG-4", h.frees(session), [(1, 0x41)])


@pytest.mark.req("R-FLAG-5")
@pytest.mark.requires(Capability.INLINE_FLAG, Capability.RELEASE)
def test_flag_never_changes(session: Session) -> None:
    """Flag never changes."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    inline = session.new_code(session.main)
    flags = [session.co_flags(early), session.co_flags(inline)]
    session.set_extra(session.main, early, index, 0x51)
    session.set_extra(session.main, inline, index, 0x52)
    assert [session.co_flags(early), session.co_flags(inline)] == flags, (
        f"{h.SET} changed co_flags (R-FLAG-5)"
    )
    session.release_index(session.main, index)
    assert [session.co_flags(early), session.co_flags(inline)] == flags, (
        f"{h.RELEASE} changed co_flags (R-FLAG-5)"
    )
    assert not _flagged(session, early), "flag appeared (R-FLAG-5)"
    assert _flagged(session, inline), "flag vanished (R-FLAG-5)"


@pytest.mark.req("R-FLAG-7")
@pytest.mark.requires(Capability.INLINE_FLAG)
def test_caller_cannot_forge_flag(session: Session) -> None:
    """Caller cannot forge flag."""
    code = session.new_code(session.main, flags=CO_INLINE_EXTRA, nested=1)
    assert not _flagged(session, code), (
        "a caller-supplied CO_INLINE_EXTRA was kept (R-FLAG-7)"
    )


@pytest.mark.req("R-FLAG-7")
@pytest.mark.requires(
    Capability.INLINE_FLAG, Capability.COPY, Capability.RELEASE
)
def test_replace_cannot_forge_flag(session: Session) -> None:
    """Replace cannot forge flag.

    R-FLAG-7: replace() of a flagged object with no consumer active constructs
    an unflagged copy.
    """
    index = session.request_index(session.main, FreeFunc(1))
    flagged = session.new_code(session.main)
    session.release_index(session.main, index)
    for how in ("replace", "marshal"):
        copy = session.copy_code(session.main, flagged, how)
        assert not _flagged(session, copy), (
            f"{how}() of a flagged code object kept CO_INLINE_EXTRA with no "
            f"consumer active (R-FLAG-7)"
        )


@pytest.mark.req("R-FLAG-8")
@pytest.mark.requires(Capability.RELEASE, Capability.STORAGE_SIZE)
def test_zero_cost_again_after_last_release(session: Session) -> None:
    """Zero cost again after last release."""
    indices = [
        session.request_index(session.main, FreeFunc(1)) for _ in range(3)
    ]
    session.new_code(session.main)
    for index in indices:
        session.release_index(session.main, index)
    code = session.new_code(session.main, nested=1)
    for each in (code, *session.nested(code)):
        size = session.extra_bytes(each)
        assert size == 0, (
            f"after every index was released a new code object spends "
            f"{size} bytes (R-FLAG-8)"
        )


@pytest.mark.req("R-FLAG-9")
@pytest.mark.requires(Capability.SIZEOF, Capability.STORAGE_SIZE)
def test_sizeof_counts_extra_storage(session: Session) -> None:
    """sys.getsizeof() counts extra storage."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    inline = session.new_code(session.main)
    later = session.request_index(session.main, FreeFunc(1))
    base = session.sizeof(early) - session.extra_bytes(early)
    for code, slot in ((early, index), (inline, later), (inline, index)):
        session.set_extra(session.main, code, slot, 0x91)
        extra = session.extra_bytes(code)
        size = session.sizeof(code)
        assert size - extra == base, (
            f"sys.getsizeof() is {size} with {extra} extra bytes; "
            f"without extra storage it is {base} (R-FLAG-9)"
        )
    assert session.extra_bytes(early) > 0, (
        "out-of-line storage must be counted (R-FLAG-9)"
    )


@pytest.mark.req("R-FLAG-9")
@pytest.mark.requires(Capability.SIZEOF, Capability.STORAGE_SIZE)
@pytest.mark.parametrize("slots", [1, 2, 16])
def test_sizeof_holds_a_pointer_per_out_of_line_value(
    session: Session, slots: int
) -> None:
    """The size reported grows by a pointer at least per value out of line.

    A code object made before any index exists has no inline storage, so
    the values stored under the ``slots`` indices requested afterwards
    (the highest first) live out of line; sys.getsizeof() must then
    exceed what it reported before the stores by at least one pointer
    for each value held.
    """
    code = session.new_code(session.main)
    indices = [
        session.request_index(session.main, FreeFunc(1)) for _ in range(slots)
    ]
    before = session.sizeof(code)
    for n, index in enumerate(reversed(indices)):
        session.set_extra(session.main, code, index, 0x990 + n)
    grown = session.sizeof(code) - before
    pointers = slots * h.WORD_BITS // 8
    assert grown >= pointers, (
        f"sys.getsizeof() grew by {grown} bytes for {slots} values stored "
        f"out of line; they hold {pointers} bytes of pointers (R-FLAG-9)"
    )


@pytest.mark.req("R-FLAG-10")
@pytest.mark.requires(Capability.PYTHON_CODE, Capability.COPY)
def test_flag_is_invisible_to_python_code(session: Session) -> None:
    """CO_INLINE_EXTRA is invisible to Python code.

    The same code twice: constructed before a consumer exists, and copied
    by ``replace()`` once one does (the copy is a construction, so it has
    inline storage, R-COPY-2).  Python code must not tell them apart.
    """
    flags = 0x3  # CO_OPTIMIZED | CO_NEWLOCALS, as a function has
    plain = session.new_code(session.main, nested=1, flags=flags)
    index = session.request_index(session.main, FreeFunc(1))
    inline = session.copy_code(session.main, plain, "replace")
    session.set_extra(session.main, inline, index, 0x1001)
    h.precondition(
        _flagged(session, inline),
        "the copy constructed with a consumer has no inline storage "
        "(R-COPY-2), so this test cannot check R-FLAG-10",
    )
    h.precondition(
        not _flagged(session, plain),
        "the code object constructed before any consumer has inline "
        "storage (R-FLAG-1), so this test cannot check R-FLAG-10",
    )
    seen_plain = session.python_view(plain)
    seen_inline = session.python_view(inline)
    assert seen_inline.co_flags == seen_plain.co_flags == flags, (
        f"code.co_flags is {seen_inline.co_flags:#x} with a consumer and "
        f"{seen_plain.co_flags:#x} without; both must be {flags:#x} "
        f"(R-FLAG-10)"
    )
    assert session.python_equal(plain, inline), (
        "the same code compares unequal with and without a consumer "
        "(R-FLAG-10)"
    )
    assert seen_inline.hash == seen_plain.hash, (
        "hash() of the same code differs with and without a consumer "
        "(R-FLAG-10)"
    )
    assert seen_inline.marshal == seen_plain.marshal, (
        "marshal.dumps() of the same code differs with and without a "
        "consumer, so .pyc files would depend on it (R-FLAG-10)"
    )
    copy = session.copy_code(session.main, inline, "replace")
    assert session.python_view(copy).co_flags == flags, (
        "replace() carried CO_INLINE_EXTRA into co_flags (R-FLAG-10)"
    )


@pytest.mark.req("R-FLAG-3")
@pytest.mark.requires(Capability.INLINE_FLAG)
@pytest.mark.isolated
def test_has_inline_extra_rejects_non_code(session: Session) -> None:
    """HasInlineExtra on a non-code object raises SystemError."""
    other = session.new_non_code(session.main)
    with h.api_error(h.HAS_INLINE, "SystemError", "R-FLAG-3"):
        session.has_inline_extra(other)
