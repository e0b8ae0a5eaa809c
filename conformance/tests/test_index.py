"""Index allocation: PyUnstable_Eval_RequestCodeExtraIndex and release."""

from __future__ import annotations

import pytest

from ..adapter import (
    MIN_INDICES,
    ApiError,
    Capability,
    FreeAction,
    FreeFunc,
    Session,
)
from ..evidence import Deviation
from . import helpers as h


@pytest.mark.req("R-INDEX-1")
def test_request_returns_distinct_non_negative_indices(
    session: Session,
) -> None:
    """Request returns distinct non negative indices."""
    indices = [
        session.request_index(session.main, FreeFunc(tag % 16))
        for tag in range(40)
    ]
    assert all(i >= 0 for i in indices), (
        f"{h.REQUEST} returned a negative index (R-INDEX-1): {indices}"
    )
    assert len(set(indices)) == len(indices), (
        f"{h.REQUEST} returned an index twice (R-INDEX-1): {indices}"
    )


@pytest.mark.req("R-INDEX-1")
@pytest.mark.requires(Capability.RELEASE)
def test_request_after_release_avoids_allocated_indices(
    session: Session,
) -> None:
    """Request after release avoids allocated indices.

    R-INDEX-1: a request after releases never returns an index that is still
    allocated.
    """
    allocated = {session.request_index(session.main, None) for _ in range(10)}
    for index in sorted(allocated)[2:8:3]:
        session.release_index(session.main, index)
        allocated.discard(index)
    for _ in range(6):
        index = session.request_index(session.main, None)
        assert index >= 0, f"{h.REQUEST} returned {index} (R-INDEX-1)"
        assert index not in allocated, (
            f"{h.REQUEST} returned index {index}, which is still allocated"
            f" (R-INDEX-1); allocated: {sorted(allocated)}"
        )
        allocated.add(index)


@pytest.mark.req("R-INDEX-2")
def test_interpreter_offers_minimum_index_capacity(session: Session) -> None:
    """Interpreter offers minimum index capacity."""
    indices = []
    for n in range(MIN_INDICES):
        try:
            indices.append(session.request_index(session.main, FreeFunc(1)))
        except ApiError as exc:
            raise Deviation(
                f"{h.REQUEST} failed "
                f"({exc.exc_type or 'no exception set'}) after {n} "
                f"indices; R-INDEX-2 requires {MIN_INDICES}",
                requirement="R-INDEX-2",
                function=h.REQUEST,
                expected={"indices": MIN_INDICES},
                actual={"indices": n, "exception": exc.exc_type},
                exception=exc.exc_type,
            ) from None
    assert len(set(indices)) == MIN_INDICES, (
        f"{h.REQUEST} returned duplicates among {MIN_INDICES} (R-INDEX-2)"
    )


@pytest.mark.req("R-INDEX-3")
def test_exhaustion_raises_runtime_error(session: Session) -> None:
    """Exhaustion raises RuntimeError."""
    h.exhaust_indices(session, session.main)
    for _ in range(2):
        with h.api_error(h.REQUEST, "RuntimeError", "R-INDEX-3"):
            session.request_index(session.main, FreeFunc(1))


@pytest.mark.req("R-INDEX-4")
def test_exhaustion_leaves_indices_and_values_intact(
    session: Session,
) -> None:
    """Exhaustion leaves indices and values intact."""
    early = session.new_code(session.main)
    first = session.request_index(session.main, FreeFunc(1))
    inline = session.new_code(session.main)
    session.set_extra(session.main, early, first, 0x11)
    session.set_extra(session.main, inline, first, 0x21)
    indices = h.exhaust_indices(session, session.main)
    for _ in range(3):
        try:
            session.request_index(session.main, FreeFunc(2))
        except ApiError:
            pass
        else:
            pytest.fail(f"{h.REQUEST} succeeded after exhaustion (R-INDEX-4)")
    h.assert_no_frees(h.REQUEST, "R-INDEX-4", session)
    h.assert_get(session, session.main, early, first, 0x11, "R-INDEX-4")
    h.assert_get(session, session.main, inline, first, 0x21, "R-INDEX-4")
    last = indices[-1]
    session.set_extra(session.main, inline, last, 0x31)
    h.assert_get(session, session.main, inline, last, 0x31, "R-INDEX-4")
    session.set_extra(session.main, early, first, 0x12)
    h.assert_frees(h.SET, "R-INDEX-4", h.frees(session), [(1, 0x11)])


@pytest.mark.req("R-INDEX-5")
@pytest.mark.isolated
def test_null_free_function_is_never_called(session: Session) -> None:
    """A NULL free function is never called."""
    early = session.new_code(session.main)
    silent = session.request_index(session.main, None)
    recorded = session.request_index(session.main, FreeFunc(3))
    code = session.new_code(session.main, nested=1)
    for target in (early, code):
        session.set_extra(session.main, target, silent, 0x51)
        session.set_extra(session.main, target, silent, 0x52)
        session.set_extra(session.main, target, silent, 0)
        session.set_extra(session.main, target, silent, 0x53)
    session.set_extra(session.main, code, recorded, 0x61)
    h.assert_no_frees(h.SET, "R-INDEX-5", session)
    session.drop(early)
    session.drop(code)
    # Only the values stored under the NULL-free index are this
    # requirement's: whether 0x61 is freed is R-FREE-3's question.
    silent_values = {0x51, 0x52, 0x53}
    h.assert_frees(
        "code object destruction",
        "R-INDEX-5",
        [f for f in h.frees(session) if f[1] in silent_values],
        [],
    )


@pytest.mark.req("R-INDEX-5")
@pytest.mark.requires(Capability.RELEASE)
@pytest.mark.isolated
def test_null_free_function_not_called_on_release(session: Session) -> None:
    """A NULL free function is not called on release.

    R-INDEX-5: releasing an index registered with a NULL free function passes
    its values to no free function.
    """
    early = session.new_code(session.main)
    silent = session.request_index(session.main, None)
    code = session.new_code(session.main)
    session.set_extra(session.main, early, silent, 0x71)
    session.set_extra(session.main, code, silent, 0x72)
    session.release_index(session.main, silent)
    h.assert_no_frees(h.RELEASE, "R-INDEX-5", session)


@pytest.mark.req("R-INDEX-6")
def test_first_index_is_zero_and_allocation_is_dense(
    session: Session,
) -> None:
    """First index is zero and allocation is dense."""
    indices = [session.request_index(session.main, None) for _ in range(5)]
    assert indices == [0, 1, 2, 3, 4], (
        f"{h.REQUEST} in a fresh interpreter must return 0, 1, 2, ... "
        f"(R-INDEX-6); returned {indices}"
    )


@pytest.mark.req("R-INDEX-6")
@pytest.mark.requires(Capability.RELEASE)
def test_request_reuses_lowest_released_index(session: Session) -> None:
    """After releases, the lowest free index comes back first (R-INDEX-6)."""
    for _ in range(6):
        session.request_index(session.main, None)
    session.release_index(session.main, 4)
    session.release_index(session.main, 1)
    got = [session.request_index(session.main, None) for _ in range(3)]
    assert got == [1, 4, 6], (
        f"{h.REQUEST} must return the lowest free index (R-INDEX-6): after "
        f"releasing 4 and 1 of 0-5, expected [1, 4, 6], got {got}"
    )


@pytest.mark.req("R-INDEX-7")
@pytest.mark.requires(Capability.RELEASE)
@pytest.mark.isolated
def test_release_frees_every_value_once(session: Session) -> None:
    """Release frees every value once."""
    early = session.new_code(session.main)
    released = session.request_index(session.main, FreeFunc(1))
    kept = session.request_index(session.main, FreeFunc(2))
    inline = session.new_code(session.main, nested=2)
    children = session.nested(inline)
    empty = session.new_code(session.main)
    # Handles may compare by value (real code objects): keep pairs.
    stored = [(early, 0x101), (inline, 0x102), (children[1], 0x103)]
    for code, value in stored:
        session.set_extra(session.main, code, released, value)
        session.set_extra(session.main, code, kept, value + 0x1000)
    session.set_extra(session.main, empty, released, 0x104)
    session.set_extra(session.main, empty, released, 0)
    h.frees(session)
    session.release_index(session.main, released)
    h.assert_frees(
        h.RELEASE,
        "R-INDEX-7",
        h.frees(session),
        [(1, value) for _, value in stored],
    )
    for code, value in stored:
        h.assert_get(
            session, session.main, code, kept, value + 0x1000, "R-INDEX-7"
        )
    for child in children:
        session.drop(child)
    session.drop(inline)
    # The released index's values were freed once, by the release: the
    # destruction must not free them again (the kept index's values are
    # R-FREE-3's business).
    h.assert_frees(
        "code object destruction",
        "R-INDEX-7",
        h.frees(session, tags=[1]),
        [],
    )


@pytest.mark.req("R-INDEX-8")
@pytest.mark.requires(Capability.RELEASE)
@pytest.mark.isolated
def test_reused_index_reads_null(session: Session) -> None:
    """Reused index reads NULL."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    inline = session.new_code(session.main)
    for code in (early, inline):
        session.set_extra(session.main, code, index, 0x81)
    session.release_index(session.main, index)
    later = session.new_code(session.main)
    for _ in range(MIN_INDICES):
        if session.request_index(session.main, FreeFunc(2)) == index:
            break
    else:
        return  # Never reused: allowed, and nothing to read.
    for code in (early, inline, later):
        h.assert_get(session, session.main, code, index, 0, "R-INDEX-8")


@pytest.mark.req("R-INDEX-9")
@pytest.mark.requires(Capability.RELEASE)
@pytest.mark.isolated
def test_bad_release_raises_system_error_and_changes_nothing(
    session: Session,
) -> None:
    """Bad release raises system error and changes nothing."""
    kept = session.request_index(session.main, FreeFunc(1))
    gone = session.request_index(session.main, FreeFunc(2))
    code = session.new_code(session.main)
    session.set_extra(session.main, code, kept, 0x91)
    session.release_index(session.main, gone)
    for bad in (-1, -1000, gone, 200, MIN_INDICES + 7):
        with h.api_error(h.RELEASE, "SystemError", "R-INDEX-9"):
            session.release_index(session.main, bad)
    h.assert_no_frees(h.RELEASE, "R-INDEX-9", session)
    h.assert_get(session, session.main, code, kept, 0x91, "R-INDEX-9")
    session.set_extra(session.main, code, kept, 0x92)
    h.assert_frees(h.SET, "R-INDEX-9", h.frees(session), [(1, 0x91)])


@pytest.mark.req("R-INDEX-10")
@pytest.mark.requires(Capability.RELEASE)
@pytest.mark.isolated
def test_released_index_is_invalid_for_get_and_set(
    session: Session,
) -> None:
    """Released index is invalid for get and set."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    session.request_index(session.main, FreeFunc(2))
    inline = session.new_code(session.main)
    for code in (early, inline):
        session.set_extra(session.main, code, index, 0xA1)
    session.release_index(session.main, index)
    h.frees(session)
    for code in (early, inline):
        with h.api_error(h.GET, "SystemError", "R-INDEX-10"):
            session.get_extra(session.main, code, index)
        with h.api_error(h.SET, "SystemError", "R-INDEX-10"):
            session.set_extra(session.main, code, index, 0xA2)
    h.assert_no_frees(h.SET, "R-INDEX-10", session)


@pytest.mark.req("R-INDEX-11")
@pytest.mark.requires(Capability.RELEASE)
@pytest.mark.isolated
@pytest.mark.parametrize(
    ("action", "function"),
    [(FreeAction.GET, h.GET), (FreeAction.SET, h.SET)],
    ids=["get", "set"],
)
def test_index_is_invalid_for_the_free_functions_of_its_release(
    session: Session, action: FreeAction, function: str
) -> None:
    """Get and Set called back during a release of their own index.

    What a release calls reads (GET) or stores into (SET) a second code
    object, under the very index that is going away.
    """
    holder = session.new_code(session.main)
    other = session.new_code(session.main)
    index = h.request_self_acting(session, action, other, 0xB1)
    session.set_extra(session.main, holder, index, 0xA1)
    h.assert_no_frees(h.SET, "R-INDEX-11", session)
    session.release_index(session.main, index)
    calls = [c for c in h.calls_of(session) if c.value == 0xA1]
    # Whether the release frees the value at all is R-INDEX-7's question.
    h.precondition(
        calls, f"{h.RELEASE} did not free the value 0xa1 (R-INDEX-7)"
    )
    call = calls[0]
    if call.error != "SystemError":
        raise Deviation(
            f"{function} with the index being released, called by its free "
            f"function during {h.RELEASE}, must fail with SystemError; it "
            f"returned {call.result!r} with "
            f"{call.error or 'no exception'} (R-INDEX-11)",
            requirement="R-INDEX-11",
            function=function,
            expected={"error": "SystemError"},
            actual={"error": call.error, "result": call.result},
        )
