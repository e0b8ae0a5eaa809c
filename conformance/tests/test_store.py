"""Storage: PyUnstable_Code_GetExtra and PyUnstable_Code_SetExtra."""

from __future__ import annotations

import pytest

from ..adapter import Capability, FreeAction, FreeFunc, Session
from ..evidence import Deviation
from . import helpers as h

#: Indices that are never valid: negative, or far beyond any allocation.
NEGATIVE = (-1, -2, -(2**31))


def _index_and_codes(session: Session) -> tuple[int, list[object]]:
    """Request an index (free function tag 1) around new code objects.

    Return it with a code object made before it (no inline storage), one
    made after it (inline storage) and that one's nested code object.
    """
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    return index, [early, *_codes(session)]


def _codes(session: Session) -> list[object]:
    """One code object without and one with inline storage, and a child.

    Call with exactly one index allocated; the first object is made
    before it by the caller.
    """
    code = session.new_code(session.main, nested=1)
    return [code, *session.nested(code)]


@pytest.mark.req("R-STORE-1")
def test_unset_slot_reads_null(session: Session) -> None:
    """Unset slot reads NULL."""
    early = session.new_code(session.main)
    first = session.request_index(session.main, FreeFunc(1))
    codes = [early, *_codes(session)]
    second = session.request_index(session.main, FreeFunc(2))
    for code in codes:
        for index in (first, second):
            h.assert_get(session, session.main, code, index, 0, "R-STORE-1")


@pytest.mark.req("R-STORE-2")
def test_set_then_get_round_trips(session: Session) -> None:
    """Set then get round trips."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    codes = [early, *_codes(session)]
    for n, code in enumerate(codes):
        session.set_extra(session.main, code, index, 0x200 + n)
    for _ in range(2):
        for n, code in enumerate(codes):
            h.assert_get(
                session, session.main, code, index, 0x200 + n, "R-STORE-2"
            )
    session.set_extra(session.main, early, index, 0x2FF)
    h.assert_get(session, session.main, early, index, 0x2FF, "R-STORE-2")


@pytest.mark.req("R-STORE-3")
def test_opaque_bit_patterns_round_trip(session: Session) -> None:
    """Opaque bit patterns round trip."""
    index, codes = _index_and_codes(session)
    expected_frees = []
    for code in codes:
        previous = 0
        for value in h.OPAQUE_VALUES:
            session.set_extra(session.main, code, index, value)
            h.assert_get(
                session, session.main, code, index, value, "R-STORE-3"
            )
            if previous:
                expected_frees.append((1, previous))
            previous = value
    h.assert_frees(
        h.SET, "R-STORE-3", h.frees(session), expected_frees, ordered=True
    )


@pytest.mark.req("R-STORE-4")
def test_set_changes_no_other_slot(session: Session) -> None:
    """Set changes no other slot."""
    early = session.new_code(session.main)
    indices = [session.request_index(session.main, FreeFunc(1))]
    codes = [early, *_codes(session)]
    indices += [
        session.request_index(session.main, FreeFunc(1)) for _ in range(2)
    ]
    grid = {
        (c, i): 0x400 + 0x10 * c + i
        for c in range(len(codes))
        for i in range(len(indices))
    }
    for (c, i), value in grid.items():
        session.set_extra(session.main, codes[c], indices[i], value)
        for (c2, i2), value2 in grid.items():
            if (c2, i2) > (c, i):
                break
            h.assert_get(
                session,
                session.main,
                codes[c2],
                indices[i2],
                value2,
                "R-STORE-4",
            )
    for (c, i), value in grid.items():
        h.assert_get(
            session, session.main, codes[c], indices[i], value, "R-STORE-4"
        )


@pytest.mark.req("R-STORE-5")
def test_set_null_clears_slot(session: Session) -> None:
    """Set NULL clears slot."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    for code in [early, *_codes(session)]:
        session.set_extra(session.main, code, index, 0x501)
        session.set_extra(session.main, code, index, 0)
        h.assert_get(session, session.main, code, index, 0, "R-STORE-5")
        session.set_extra(session.main, code, index, 0)
        h.assert_get(session, session.main, code, index, 0, "R-STORE-5")


@pytest.mark.req("R-STORE-6")
@pytest.mark.isolated
def test_get_invalid_index_raises_system_error(session: Session) -> None:
    """Get with an invalid index raises SystemError."""
    index, codes = _index_and_codes(session)
    for code in codes:
        session.set_extra(session.main, code, index, 0x601)
    for code in codes:
        for bad in (*NEGATIVE, index + 1, index + 2, 254, 255, 10**6):
            with h.api_error(h.GET, "SystemError", "R-STORE-6"):
                session.get_extra(session.main, code, bad)


@pytest.mark.req("R-STORE-7", "R-STORE-11")
@pytest.mark.isolated
def test_set_invalid_index_stores_and_frees_nothing(
    session: Session,
) -> None:
    """Set invalid index stores and frees nothing."""
    index, codes = _index_and_codes(session)
    for code in codes:
        session.set_extra(session.main, code, index, 0x701)
    for code in codes:
        for bad in (*NEGATIVE, index + 1, 254, 255, 10**6):
            with h.api_error(h.SET, "SystemError", "R-STORE-7"):
                session.set_extra(session.main, code, bad, 0x702)
    h.assert_no_frees(h.SET, "R-STORE-7", session)
    later = session.request_index(session.main, FreeFunc(2))
    for code in codes:
        h.assert_get(session, session.main, code, index, 0x701, "R-STORE-11")
        h.assert_get(session, session.main, code, later, 0, "R-STORE-7")


@pytest.mark.req("R-STORE-8")
@pytest.mark.isolated
def test_get_non_code_raises_system_error(session: Session) -> None:
    """Get on a non-code object raises SystemError."""
    index = session.request_index(session.main, FreeFunc(1))
    other = session.new_non_code(session.main)
    with h.api_error(h.GET, "SystemError", "R-STORE-8"):
        session.get_extra(session.main, other, index)


@pytest.mark.req("R-STORE-9", "R-STORE-11")
@pytest.mark.isolated
def test_set_non_code_raises_system_error_and_keeps_value(
    session: Session,
) -> None:
    """Set non code raises system error and keeps value."""
    index = session.request_index(session.main, FreeFunc(1))
    other = session.new_non_code(session.main)
    for value in (0x901, 0):
        with h.api_error(h.SET, "SystemError", "R-STORE-9"):
            session.set_extra(session.main, other, index, value)
    session.drop(other)
    h.assert_no_frees(h.SET, "R-STORE-9", session)


@pytest.mark.req("R-STORE-10")
@pytest.mark.isolated
def test_failed_get_clears_output(session: Session) -> None:
    """A failed Get leaves NULL in its output."""
    index = session.request_index(session.main, FreeFunc(1))
    code = session.new_code(session.main)
    session.set_extra(session.main, code, index, 0xA01)
    other = session.new_non_code(session.main)
    failed = 0
    for target, bad in ((code, index + 1), (code, -1), (other, index)):
        try:
            error, out = session.get_extra_on_error(session.main, target, bad)
        except AssertionError:
            # Get succeeded: whether it must fail is R-STORE-6's and
            # R-STORE-8's question; this requirement is about failures.
            continue
        failed += 1
        if out != 0:
            raise Deviation(
                f"{h.GET} failed ({error or 'no exception set'}) but left "
                f"*extra = {out:#x}; R-STORE-10 requires NULL",
                requirement="R-STORE-10",
                function=h.GET,
                expected={"extra": 0},
                actual={"extra": out, "exception": error},
                exception=error,
            )
    h.precondition(
        failed, f"{h.GET} never failed, so there is no output to check"
    )


@pytest.mark.req("R-STORE-11")
@pytest.mark.isolated
def test_failed_set_keeps_every_previous_value(session: Session) -> None:
    """Failed set keeps every previous value."""
    index, codes = _index_and_codes(session)
    other = session.new_non_code(session.main)
    for n, code in enumerate(codes):
        session.set_extra(session.main, code, index, 0xB00 + n)
    for code in codes:
        for target, bad in ((code, -1), (code, index + 3), (other, index)):
            with h.api_error(h.SET, "SystemError", "R-STORE-11"):
                session.set_extra(session.main, target, bad, 0xBFF)
    h.assert_no_frees(h.SET, "R-STORE-11", session)
    for n, code in enumerate(codes):
        h.assert_get(
            session, session.main, code, index, 0xB00 + n, "R-STORE-11"
        )


# -- compare-and-exchange (Spec-Version 2.0) --------------------------------


@pytest.mark.req("R-STORE-12")
@pytest.mark.requires(Capability.COMPARE_EXCHANGE)
def test_compare_exchange_stores_when_expected_matches(
    session: Session,
) -> None:
    """CompareExchange stores when the slot holds *expected."""
    index, codes = _index_and_codes(session)
    for n, code in enumerate(codes):
        first, second = 0xC10 + 0x10 * n, 0xC11 + 0x10 * n
        got = session.compare_exchange_extra(
            session.main, code, index, 0, first
        )
        assert got == (True, 0), (
            f"{h.CAS} over an empty slot with *expected NULL must store and "
            f"return 1 (R-STORE-12); got {got}"
        )
        h.assert_get(session, session.main, code, index, first, "R-STORE-12")
        h.assert_no_frees(h.CAS, "R-STORE-12", session)
        got = session.compare_exchange_extra(
            session.main, code, index, first, second
        )
        assert got == (True, first), (
            f"{h.CAS} with the current value as *expected must store "
            f"(R-STORE-12); got {got}"
        )
        h.assert_get(session, session.main, code, index, second, "R-STORE-12")
        h.assert_frees(h.CAS, "R-STORE-12", h.frees(session), [(1, first)])
        got = session.compare_exchange_extra(
            session.main, code, index, second, second
        )
        assert got == (True, second), f"{h.CAS} re-store: {got}"
        h.assert_no_frees(h.CAS, "R-STORE-12", session)
        got = session.compare_exchange_extra(
            session.main, code, index, second, 0
        )
        assert got == (True, second), f"{h.CAS} clearing: {got}"
        h.assert_get(session, session.main, code, index, 0, "R-STORE-12")
        h.assert_frees(h.CAS, "R-STORE-12", h.frees(session), [(1, second)])


@pytest.mark.req("R-STORE-12")
@pytest.mark.requires(Capability.COMPARE_EXCHANGE)
def test_compare_exchange_frees_after_the_store(session: Session) -> None:
    """The value CompareExchange replaces is freed after the new one is in.

    R-STORE-12 with R-FREE-9: the free function of the previous value sees
    the new value in the slot.
    """
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    inline = session.new_code(session.main)
    for code in (early, inline):
        reader = session.request_index(
            session.main, FreeFunc(2, FreeAction.GET, code, index)
        )
        session.set_extra(session.main, code, reader, 0xD01)
        session.set_extra(session.main, code, index, 0xD02)
        # Swap the value under `reader`: its free function reads `index`.
        session.compare_exchange_extra(session.main, code, index, 0xD02, 0xD03)
        h.assert_frees(h.CAS, "R-STORE-12", h.frees(session), [(1, 0xD02)])
        session.compare_exchange_extra(
            session.main, code, reader, 0xD01, 0xD04
        )
        calls = session.take_free_calls()
        got = [(c.tag, c.value, c.result) for c in calls]
        assert got == [(2, 0xD01, 0xD03)], (
            f"{h.CAS} must free the previous value once, after the new one "
            f"is stored (R-STORE-12): {got}"
        )
        # Empty the reader's slot so that destruction frees nothing more.
        session.set_extra(session.main, code, reader, 0)
        h.frees(session)


@pytest.mark.req("R-STORE-12")
@pytest.mark.requires(Capability.COMPARE_EXCHANGE)
@pytest.mark.isolated
def test_compare_exchange_errors_store_and_free_nothing(
    session: Session,
) -> None:
    """CompareExchange fails as Set does, changing nothing."""
    index, codes = _index_and_codes(session)
    other = session.new_non_code(session.main)
    for code in codes:
        session.set_extra(session.main, code, index, 0xE01)
    for code in codes:
        for bad in (*NEGATIVE, index + 1, 255, 10**6):
            with h.api_error(h.CAS, "SystemError", "R-STORE-12"):
                session.compare_exchange_extra(
                    session.main, code, bad, 0, 0xE02
                )
            with h.api_error(h.CAS, "SystemError", "R-STORE-12"):
                session.compare_exchange_extra(
                    session.main, code, bad, 0xE01, 0xE02
                )
    with h.api_error(h.CAS, "SystemError", "R-STORE-12"):
        session.compare_exchange_extra(session.main, other, index, 0, 0xE03)
    h.assert_no_frees(h.CAS, "R-STORE-12", session)
    for code in codes:
        h.assert_get(session, session.main, code, index, 0xE01, "R-STORE-12")


@pytest.mark.req("R-STORE-12")
@pytest.mark.requires(Capability.COMPARE_EXCHANGE, Capability.ALLOC_FAILURE)
@pytest.mark.isolated
def test_compare_exchange_memory_error_keeps_slot(session: Session) -> None:
    """CompareExchange that cannot allocate fails with MemoryError.

    R-STORE-12 with R-ALLOC-1: out-of-line storage that cannot be allocated
    is a MemoryError; the slot stays empty and nothing is freed.
    """
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    session.fail_allocations(0, 1)
    with h.api_error(h.CAS, "MemoryError", "R-STORE-12"):
        session.compare_exchange_extra(session.main, early, index, 0, 0xE11)
    session.fail_allocations(0, 0)
    h.assert_get(session, session.main, early, index, 0, "R-STORE-12")
    h.assert_no_frees(h.CAS, "R-STORE-12", session)
    got = session.compare_exchange_extra(session.main, early, index, 0, 0xE12)
    assert got == (True, 0), f"{h.CAS} after the failure: {got}"


@pytest.mark.req("R-STORE-13")
@pytest.mark.requires(Capability.COMPARE_EXCHANGE)
def test_compare_exchange_reports_current_value_otherwise(
    session: Session,
) -> None:
    """CompareExchange with a stale *expected reports the current value."""
    index, codes = _index_and_codes(session)
    for n, code in enumerate(codes):
        got = session.compare_exchange_extra(
            session.main, code, index, 0xF01, 0xF02
        )
        assert got == (False, 0), (
            f"{h.CAS} on an empty slot with *expected non-NULL must return "
            f"0 and report NULL (R-STORE-13); got {got}"
        )
        h.assert_get(session, session.main, code, index, 0, "R-STORE-13")
        value = 0xF10 + n
        session.set_extra(session.main, code, index, value)
        for expected in (0, 0xF01, value + 1):
            got = session.compare_exchange_extra(
                session.main, code, index, expected, 0xF03
            )
            assert got == (False, value), (
                f"{h.CAS} with *expected {expected:#x} while the slot holds "
                f"{value:#x} must return 0 and report it (R-STORE-13); "
                f"got {got}"
            )
            h.assert_get(
                session, session.main, code, index, value, "R-STORE-13"
            )
        h.assert_no_frees(h.CAS, "R-STORE-13", session)
