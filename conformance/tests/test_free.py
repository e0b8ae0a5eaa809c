"""Ownership: when and how free functions are called."""

from __future__ import annotations

import pytest

from ..adapter import Capability, FreeAction, FreeFunc, Hook, Session
from ..evidence import Deviation
from . import helpers as h

DESTROY = "code object destruction"


@pytest.mark.req("R-FREE-1")
def test_overwrite_frees_old_value_once(session: Session) -> None:
    """Overwrite frees old value once."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(1))
    inline = session.new_code(session.main)
    for code in (early, inline):
        session.set_extra(session.main, code, index, 0x11)
        h.assert_no_frees(h.SET, "R-FREE-1", session)
        session.set_extra(session.main, code, index, 0x12)
        h.assert_frees(h.SET, "R-FREE-1", h.frees(session), [(1, 0x11)])
        session.set_extra(session.main, code, index, 0x13)
        h.assert_frees(h.SET, "R-FREE-1", h.frees(session), [(1, 0x12)])


@pytest.mark.req("R-FREE-2")
def test_clear_frees_old_value_once(session: Session) -> None:
    """Clear frees old value once."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(2))
    inline = session.new_code(session.main)
    for code in (early, inline):
        session.set_extra(session.main, code, index, 0x21)
        session.set_extra(session.main, code, index, 0)
        h.assert_frees(h.SET, "R-FREE-2", h.frees(session), [(2, 0x21)])
        session.set_extra(session.main, code, index, 0)
        h.assert_no_frees(h.SET, "R-FREE-2", session)


@pytest.mark.req("R-FREE-3")
@pytest.mark.isolated
def test_destruction_frees_every_value_once(session: Session) -> None:
    """Destruction frees every value once."""
    early = session.new_code(session.main)
    indices = [
        session.request_index(session.main, FreeFunc(tag)) for tag in (1, 2, 3)
    ]
    inline = session.new_code(session.main, nested=2)
    children = session.nested(inline)
    expected = []
    for n, code in enumerate((early, inline, children[0])):
        for tag, index in zip((1, 2), indices, strict=False):
            value = 0x300 + 0x10 * n + tag
            session.set_extra(session.main, code, index, value)
            expected.append((tag, value))
    for child in children:
        session.drop(child)
    session.drop(early)
    session.drop(inline)
    h.assert_frees(DESTROY, "R-FREE-3", h.frees(session), expected)


@pytest.mark.req("R-FREE-4")
@pytest.mark.isolated
def test_null_is_never_freed(session: Session) -> None:
    """NULL is never freed."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(4))
    other = session.request_index(session.main, FreeFunc(5))
    inline = session.new_code(session.main, nested=1)
    for code in (early, inline):
        session.set_extra(session.main, code, index, 0)
        session.set_extra(session.main, code, other, 0x41)
        session.set_extra(session.main, code, other, 0)
    h.assert_frees(
        h.SET,
        "R-FREE-4",
        h.frees(session, null=True),
        [(5, 0x41), (5, 0x41)],
    )
    session.drop(early)
    session.drop(inline)
    h.assert_no_frees(DESTROY, "R-FREE-4", session, null=True)


@pytest.mark.req("R-FREE-4")
@pytest.mark.requires(Capability.RELEASE)
@pytest.mark.isolated
def test_release_never_frees_null(session: Session) -> None:
    """Releasing an index with only NULL slots frees nothing (R-FREE-4)."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(4))
    inline = session.new_code(session.main)
    session.set_extra(session.main, early, index, 0x42)
    session.set_extra(session.main, early, index, 0)
    h.frees(session, null=True)
    session.release_index(session.main, index)
    h.assert_no_frees(h.RELEASE, "R-FREE-4", session, null=True)
    session.drop(inline)
    session.drop(early)
    h.assert_no_frees(DESTROY, "R-FREE-4", session, null=True)


@pytest.mark.req("R-FREE-5")
def test_restoring_same_value_frees_nothing(session: Session) -> None:
    """Restoring same value frees nothing."""
    early = session.new_code(session.main)
    index = session.request_index(session.main, FreeFunc(6))
    inline = session.new_code(session.main)
    for code in (early, inline):
        for value in (0x51, 2**h.WORD_BITS - 1):
            session.set_extra(session.main, code, index, value)
            session.set_extra(session.main, code, index, value)
            session.set_extra(session.main, code, index, value)
            h.assert_get(session, session.main, code, index, value, "R-FREE-5")
        h.assert_frees(h.SET, "R-FREE-5", h.frees(session), [(6, 0x51)])
        session.set_extra(session.main, code, index, 0)
        h.assert_frees(
            h.SET, "R-FREE-5", h.frees(session), [(6, 2**h.WORD_BITS - 1)]
        )


@pytest.mark.req("R-FREE-6")
@pytest.mark.isolated
def test_value_goes_to_its_own_free_function(session: Session) -> None:
    """Value goes to its own free function."""
    early = session.new_code(session.main)
    tags = (7, 8, 9)
    indices = [session.request_index(session.main, FreeFunc(t)) for t in tags]
    inline = session.new_code(session.main)
    # Whether and how often values are freed is R-FREE-1's and
    # R-FREE-3's question: this test judges the free calls that happen.
    for code in (early, inline):
        for tag, index in zip(tags, indices, strict=True):
            session.set_extra(session.main, code, index, 0x600 + tag)
        for tag, index in zip(tags, indices, strict=True):
            session.set_extra(session.main, code, index, 0x610 + tag)
        # Each value names its index's tag in its low four bits.
        h.assert_own_free_functions(
            h.SET, "R-FREE-6", h.frees(session), lambda v: v & 0xF
        )
        session.drop(code)
        h.assert_own_free_functions(
            DESTROY, "R-FREE-6", h.frees(session), lambda v: v & 0xF
        )


@pytest.mark.req("R-FREE-7")
@pytest.mark.isolated
def test_destruction_frees_in_ascending_index_order(
    session: Session,
) -> None:
    """Destruction frees in ascending index order."""
    early = session.new_code(session.main)
    first = [
        session.request_index(session.main, FreeFunc(t)) for t in range(3)
    ]
    inline = session.new_code(session.main)
    later = [
        session.request_index(session.main, FreeFunc(t)) for t in range(3, 6)
    ]
    pairs = sorted(zip(first + later, range(6), strict=True))
    # Whether every value is freed exactly once is R-FREE-3's question:
    # the order of the first free of each value is this one's.
    for code in (early, inline):
        for index, tag in (
            pairs[3],
            pairs[0],
            pairs[5],
            pairs[1],
            pairs[4],
            pairs[2],
        ):
            session.set_extra(session.main, code, index, 0x700 + tag)
        session.drop(code)
        firsts = list(dict.fromkeys(h.frees(session)))
        h.precondition(
            len(firsts) >= 2,
            f"{DESTROY} freed fewer than two values (R-FREE-3): {firsts}",
        )
        h.assert_frees(
            DESTROY,
            "R-FREE-7",
            firsts,
            [(t, 0x700 + t) for _, t in pairs if (t, 0x700 + t) in firsts],
            ordered=True,
        )


@pytest.mark.req("R-FREE-8")
@pytest.mark.isolated
def test_freed_value_is_never_read_again(session: Session) -> None:
    """Freed value is never read again."""
    doomed = [session.new_code(session.main) for _ in range(4)]
    index = session.request_index(session.main, FreeFunc(1))
    doomed += [session.new_code(session.main) for _ in range(4)]
    for n, code in enumerate(doomed):
        session.set_extra(session.main, code, index, 0x800 + n)
    session.set_extra(session.main, doomed[0], index, 0x8FF)
    h.assert_get(session, session.main, doomed[0], index, 0x8FF, "R-FREE-8")
    for code in doomed:
        session.drop(code)
    h.frees(session)
    survivors = [session.new_code(session.main) for _ in range(16)]
    for code in survivors:
        h.assert_get(session, session.main, code, index, 0, "R-FREE-8")
    h.assert_no_frees(h.GET, "R-FREE-8", session)


@pytest.mark.req("R-FREE-8")
@pytest.mark.requires(Capability.INTERPRETERS)
@pytest.mark.isolated
def test_freed_out_of_line_value_is_never_read_again(
    session: Session,
) -> None:
    """Freed out of line value is never read again.

    R-FREE-8: values another interpreter stored on destroyed code objects (out-
    of-line storage) do not reappear on new code objects.
    """
    other = session.new_interpreter()
    index = session.request_index(other, FreeFunc(1))
    doomed = [session.new_code(session.main) for _ in range(8)]
    for n, code in enumerate(doomed):
        session.set_extra(other, code, index, 0x810 + n)
    for code in doomed:
        session.drop(code)
    h.frees(session)
    survivors = [session.new_code(session.main) for _ in range(16)]
    for code in survivors:
        h.assert_get(session, other, code, index, 0, "R-FREE-8")
    h.assert_no_frees(h.GET, "R-FREE-8", session)


@pytest.mark.req("R-FREE-9")
@pytest.mark.isolated
def test_new_value_is_visible_during_free(session: Session) -> None:
    """New value is visible during free."""
    early = session.new_code(session.main)
    index = h.request_self_acting(session, FreeAction.GET, early)
    for new in (0x92, 0):
        session.set_extra(session.main, early, index, 0x91)
        session.take_free_calls()
        session.set_extra(session.main, early, index, new)
        calls = [c for c in h.calls_of(session) if c.value == 0x91]
        # How often the old value is freed is R-FREE-1's question, and
        # whether Get works inside a free function R-FREE-10's: both
        # are set-up steps here.
        h.precondition(calls, f"{h.SET} did not free the old value (R-FREE-1)")
        h.precondition(
            calls[0].error is None,
            f"{h.GET} inside a free function failed with "
            f"{calls[0].error} (R-FREE-10)",
        )
        if calls[0].result != new:
            raise Deviation(
                f"{h.SET}: the free function read {calls[0].result:#x} "
                f"from the slot, not the new value {new:#x} (R-FREE-9)",
                requirement="R-FREE-9",
                function=h.SET,
                expected={"read_during_free": new},
                actual={"read_during_free": calls[0].result},
            )


@pytest.mark.req("R-FREE-10")
@pytest.mark.isolated
def test_free_function_may_call_the_api(session: Session) -> None:
    """A free function may call the API."""
    target = session.new_code(session.main)
    probe = session.new_code(session.main)
    plain = session.request_index(session.main, FreeFunc(1))
    setter = session.request_index(
        session.main, FreeFunc(2, FreeAction.SET, target, plain, 0xA1)
    )
    getter = session.request_index(
        session.main, FreeFunc(3, FreeAction.GET, probe, plain)
    )
    maker = session.request_index(
        session.main, FreeFunc(4, FreeAction.NEW_CODE)
    )
    code = session.new_code(session.main)
    session.set_extra(session.main, probe, plain, 0xA2)
    for index in (setter, getter, maker):
        session.set_extra(session.main, code, index, 0xA0 + index)
    h.assert_no_frees(h.SET, "R-FREE-10", session)
    session.drop(code)
    # Only the free functions that act count: a call with NULL (R-FREE-4)
    # or for the plain index is not this requirement's business.
    calls = {c.tag: c for c in h.calls_of(session) if c.tag in (2, 3, 4)}
    h.precondition(
        sorted(calls) == [2, 3, 4],
        f"{DESTROY} did not free the values of tags 2, 3, 4 (R-FREE-3): "
        f"{sorted(calls)}",
    )
    for tag, result in ((2, 0), (3, 0xA2), (4, 0)):
        assert calls[tag].error is None, (
            f"API call inside free function {tag} failed (R-FREE-10): "
            f"{calls[tag]}"
        )
        assert calls[tag].result == result, (
            f"API call inside free function {tag} must succeed with "
            f"{result:#x} (R-FREE-10); got {calls[tag]}"
        )
    h.assert_get(session, session.main, target, plain, 0xA1, "R-FREE-10")


@pytest.mark.req("R-FREE-11")
@pytest.mark.requires(Capability.INTERPRETERS, Capability.FINALIZE)
@pytest.mark.isolated
def test_finalization_frees_every_value_once(session: Session) -> None:
    """Finalization frees every value once."""
    other = session.new_interpreter()
    shared = session.new_code(session.main)
    indices = [session.request_index(other, FreeFunc(t)) for t in (1, 2)]
    own = session.new_code(other, nested=1)
    child = session.nested(own)[0]
    expected = []
    for n, code in enumerate((shared, own, child)):
        for tag, index in zip((1, 2), indices, strict=True):
            session.set_extra(other, code, index, 0xB00 + 0x10 * n + tag)
            expected.append((tag, 0xB00 + 0x10 * n + tag))
    session.end_interpreter(other)
    h.assert_frees(
        "interpreter finalization", "R-FREE-11", h.frees(session), expected
    )
    for code in (child, own, shared):
        session.drop(code)
    h.assert_no_frees(DESTROY, "R-FREE-11", session)


@pytest.mark.req("R-FREE-12")
@pytest.mark.requires(Capability.PENDING_ERROR)
@pytest.mark.isolated
def test_free_functions_run_without_the_pending_exception(
    session: Session,
) -> None:
    """Free functions run with no exception set; the caller's survives."""
    early = session.new_code(session.main)
    checker = session.request_index(
        session.main, FreeFunc(1, FreeAction.CHECK_ERROR)
    )
    inline = session.new_code(session.main, nested=1)
    child = session.nested(inline)[0]
    for n, code in enumerate((early, inline, child)):
        session.set_extra(session.main, code, checker, 0x1201 + n)
    session.drop(child)  # still referenced by `inline`
    for code in (early, inline):
        left = session.drop_with_error(code, "KeyError")
        assert left == "KeyError", (
            f"{DESTROY} with KeyError pending left {left!r} pending; the "
            f"caller's exception must survive the free functions (R-FREE-12)"
        )
    calls = [c for c in session.take_free_calls() if c.value != 0]
    # How often destruction frees is R-FREE-3's question (and a call
    # with NULL R-FREE-4's): a set-up step here.
    h.precondition(
        sorted(c.value for c in calls) == [0x1201, 0x1202, 0x1203],
        f"{DESTROY} did not free each value once (R-FREE-3): {calls}",
    )
    seen = [c for c in calls if c.result != 0]
    assert not seen, (
        f"free functions ran with the caller's exception set (R-FREE-12): "
        f"{seen}"
    )
    assert session.take_unraisable() == [], "nothing was unraisable"


@pytest.mark.req("R-FREE-12")
@pytest.mark.requires(Capability.PENDING_ERROR)
@pytest.mark.isolated
def test_exception_left_by_free_function_is_unraisable(
    session: Session,
) -> None:
    """A free function that sets an exception: unraisable, not propagated."""
    index = session.request_index(
        session.main, FreeFunc(1, FreeAction.SET_ERROR)
    )
    code = session.new_code(session.main)
    session.set_extra(session.main, code, index, 0x1211)
    session.set_extra(session.main, code, index, 0x1212)
    assert session.pending_error() is None, (
        f"{h.SET}: the free function's exception must not reach the caller "
        f"(R-FREE-12)"
    )
    assert session.take_unraisable() == ["RuntimeError"], (
        f"{h.SET}: the free function's exception must be reported as "
        f"unraisable (R-FREE-12)"
    )
    left = session.drop_with_error(code, "KeyError")
    assert left == "KeyError", (
        f"{DESTROY}: a free function's exception replaced the caller's: "
        f"{left!r} is pending instead of KeyError (R-FREE-12)"
    )
    assert session.take_unraisable() == ["RuntimeError"], (
        f"{DESTROY}: the free function's exception must be reported as "
        f"unraisable (R-FREE-12)"
    )
    h.assert_frees(
        DESTROY, "R-FREE-12", h.frees(session), [(1, 0x1211), (1, 0x1212)]
    )


@pytest.mark.req("R-FREE-12")
@pytest.mark.requires(Capability.PENDING_ERROR)
@pytest.mark.isolated
def test_batch_goes_on_after_a_free_function_leaves_an_exception(
    session: Session,
) -> None:
    """A free function's exception does not stop the frees that follow.

    One code object holds values under three indices, the lowest of which
    has a free function that leaves RuntimeError set.  Destroying the
    object frees all three in one go; the test then looks for one
    unraisable report, the two later values freed, and the caller's own
    exception pending again.
    """
    failing = session.request_index(
        session.main, FreeFunc(1, FreeAction.SET_ERROR)
    )
    later = [session.request_index(session.main, FreeFunc(t)) for t in (2, 3)]
    code = session.new_code(session.main)
    stored = [(1, 0x1221), (2, 0x1222), (3, 0x1223)]
    for index, (_, value) in zip((failing, *later), stored, strict=True):
        session.set_extra(session.main, code, index, value)
    h.precondition(
        session.take_unraisable() == [],
        "storing into empty slots reported something as unraisable",
    )
    left = session.drop_with_error(code, "KeyError")
    h.assert_frees(
        DESTROY, "R-FREE-12", h.frees(session, tags=[1, 2, 3]), stored
    )
    unraisable = session.take_unraisable()
    assert unraisable == ["RuntimeError"], (
        f"{DESTROY}: the exception one free function left must be reported "
        f"as unraisable once (R-FREE-12); reported: {unraisable}"
    )
    assert left == "KeyError", (
        f"{DESTROY}: {left!r} is pending instead of the caller's KeyError "
        f"after a free function left an exception (R-FREE-12)"
    )


@pytest.mark.req("R-FREE-13")
@pytest.mark.requires(Capability.INTERPRETERS, Capability.FINALIZE)
@pytest.mark.isolated
def test_free_functions_construct_code_during_finalization(
    session: Session,
) -> None:
    """Free functions run by finalization construct code objects.

    A second interpreter stores values, in its own code object and in one
    of the main interpreter, under an index whose free function
    constructs a code object in that second interpreter and destroys it
    again.  Ending the interpreter frees both values: each free function
    must have run once, and each of its constructions must have worked.
    """
    other = session.new_interpreter()
    maker = session.request_index(
        other, FreeFunc(1, FreeAction.NEW_CODE, interp=other)
    )
    session.request_index(other, FreeFunc(2))
    own = session.new_code(other)
    shared = session.new_code(session.main)
    for n, code in enumerate((own, shared)):
        session.set_extra(other, code, maker, 0x1331 + n)
    session.end_interpreter(other)
    calls = [c for c in h.calls_of(session) if c.tag == 1]
    h.assert_frees(
        "interpreter finalization",
        "R-FREE-13",
        calls,
        [(1, 0x1331), (1, 0x1332)],
    )
    failed = [c for c in calls if c.error is not None or c.result != 0]
    assert not failed, (
        f"a free function run by finalization could not construct a code "
        f"object in the interpreter being finalized (R-FREE-13): {failed}"
    )


@pytest.mark.req("R-FREE-13")
@pytest.mark.requires(
    Capability.INTERPRETERS, Capability.FINALIZE, Capability.HOOKS
)
@pytest.mark.isolated
def test_no_hook_runs_for_code_constructed_during_finalization(
    session: Session,
) -> None:
    """Hooks of an interpreter being finalized stay silent.

    A second interpreter has a recording hook and stores a value under
    an index whose free function constructs a code object in that
    interpreter.  Ending the interpreter frees the value, and so
    constructs the code object: the hook must not see it.
    """
    other = session.new_interpreter()
    session.add_hook(other, Hook(5))
    maker = session.request_index(
        other, FreeFunc(1, FreeAction.NEW_CODE, interp=other)
    )
    own = session.new_code(other)
    session.set_extra(other, own, maker, 0x1341)
    session.take_hook_calls()
    session.end_interpreter(other)
    calls = [c for c in h.calls_of(session) if c.tag == 1]
    h.assert_frees(
        "interpreter finalization", "R-FREE-13", calls, [(1, 0x1341)]
    )
    assert calls[0].error is None, (
        f"a free function run by finalization could not construct a code "
        f"object in the interpreter being finalized (R-FREE-13): {calls}"
    )
    seen = session.take_hook_calls()
    assert seen == [], (
        f"hooks of the interpreter being finalized ran for code its free "
        f"functions constructed (R-FREE-13): {seen}"
    )


@pytest.mark.req("R-FREE-13")
@pytest.mark.requires(Capability.INTERPRETERS, Capability.FINALIZE)
@pytest.mark.isolated
def test_code_destroyed_after_its_interpreter_is_freed_in_order(
    session: Session,
) -> None:
    """Values in code objects that outlive their interpreter.

    Stores under three indices of a second interpreter, on its own code
    object and on one of the main interpreter, and ends the second
    interpreter: each object's values must be freed then, in index order.
    Then both objects are used from the main interpreter and destroyed:
    only the main interpreter's value may be freed again.
    """
    other = session.new_interpreter()
    indices = [session.request_index(other, FreeFunc(t)) for t in (1, 2, 3)]
    own = session.new_code(other)
    early = session.new_code(session.main)
    per_code = []
    for n, code in enumerate((own, early)):
        # Stored in descending order, so that store order is no help.
        for tag, index in reversed(list(zip((1, 2, 3), indices, strict=True))):
            session.set_extra(other, code, index, 0x1300 + 0x10 * n + tag)
        per_code.append([(t, 0x1300 + 0x10 * n + t) for t in (1, 2, 3)])
    session.end_interpreter(other)
    got = h.frees(session)
    h.assert_frees(
        "interpreter finalization", "R-FREE-13", got, per_code[0] + per_code[1]
    )
    for expected in per_code:
        positions = [got.index(call) for call in expected]
        assert positions == sorted(positions), (
            f"finalization must free one code object's values in ascending "
            f"index order (R-FREE-13): {got}"
        )
    main_index = session.request_index(session.main, FreeFunc(4))
    for code in (own, early):
        session.set_extra(session.main, code, main_index, 0x13F0)
        h.assert_get(
            session, session.main, code, main_index, 0x13F0, "R-FREE-13"
        )
        session.drop(code)
    h.assert_frees(
        DESTROY, "R-FREE-13", h.frees(session), [(4, 0x13F0), (4, 0x13F0)]
    )
