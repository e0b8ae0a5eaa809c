"""The constructor hook chain."""

from __future__ import annotations

import pytest

from ..adapter import (
    MIN_CONSTRUCTOR_HOOKS,
    ApiError,
    Capability,
    FreeFunc,
    Hook,
    HookAction,
    Session,
)
from . import helpers as h

pytestmark = pytest.mark.requires(Capability.HOOKS)


def _calls(session: Session) -> list[tuple[int, int]]:
    return [(c.tag, c.code_id) for c in session.take_hook_calls()]


def _ids(session: Session, codes: list[object]) -> list[int]:
    return [session.code_id(c) for c in codes]


@pytest.mark.req("R-HOOK-1")
def test_hook_called_once_per_construction(session: Session) -> None:
    """Hook called once per construction."""
    session.new_code(session.main)
    hook_id = session.add_hook(session.main, Hook(1))
    assert hook_id >= 0, f"{h.ADD_HOOK} returned {hook_id} (R-HOOK-1)"
    assert _calls(session) == [], "hook called before any construction"
    codes = [session.new_code(session.main) for _ in range(3)]
    expected = [(1, i) for i in _ids(session, codes)]
    got = _calls(session)
    assert got == expected, (
        f"{h.ADD_HOOK}: hook calls (tag, code id) must be {expected} "
        f"(R-HOOK-1); got {got}"
    )


@pytest.mark.req("R-HOOK-2")
def test_hook_called_for_nested_code(session: Session) -> None:
    """Hook called for nested code."""
    session.add_hook(session.main, Hook(2))
    code = session.new_code(session.main, nested=3)
    ids = _ids(session, [code, *session.nested(code)])
    got = _calls(session)
    assert sorted(got) == sorted((2, i) for i in ids), (
        f"hook calls for a code object with 3 nested ones must cover "
        f"each once (R-HOOK-2); ids {ids}, calls {got}"
    )


@pytest.mark.req("R-HOOK-3")
@pytest.mark.requires(Capability.COPY)
@pytest.mark.parametrize("how", ["replace", "marshal"])
def test_hook_called_for_copies(session: Session, how: str) -> None:
    """Hook called for copies."""
    original = session.new_code(session.main, nested=1)
    session.add_hook(session.main, Hook(3))
    copy = session.copy_code(session.main, original, how)
    copy_id = session.code_id(copy)
    got = _calls(session)
    assert got.count((3, copy_id)) == 1, (
        f"{how}() must call the hook once for the copy (R-HOOK-3): {got}"
    )
    if how == "marshal":
        for child in session.nested(copy):
            assert got.count((3, session.code_id(child))) == 1, (
                f"unmarshal must call the hook once for each nested code "
                f"object (R-HOOK-2, R-HOOK-3): {got}"
            )


@pytest.mark.req("R-HOOK-4")
def test_hooks_called_in_registration_order(session: Session) -> None:
    """Hooks run in registration order."""
    for tag in (5, 1, 4, 2):
        session.add_hook(session.main, Hook(tag))
    code = session.new_code(session.main)
    got = _calls(session)
    expected = [(tag, session.code_id(code)) for tag in (5, 1, 4, 2)]
    assert got == expected, (
        f"hooks must run in registration order (R-HOOK-4): {got}"
    )


@pytest.mark.req("R-HOOK-5")
def test_hook_sees_complete_object(session: Session) -> None:
    """Hook sees complete object."""
    index = session.request_index(session.main, FreeFunc(1))
    session.add_hook(session.main, Hook(1, HookAction.SET_EXTRA, index, 0x51))
    code = session.new_code(session.main, nested=1)
    assert session.take_unraisable() == [], (
        f"{h.SET} inside the hook failed (R-HOOK-5)"
    )
    # Which objects reach the hook is R-HOOK-2's question: judge those
    # it saw, and need only the outer one.
    seen = {code_id for _, code_id in _calls(session)}
    h.precondition(
        session.code_id(code) in seen,
        "the hook was not called for the constructed code object (R-HOOK-1)",
    )
    for each in (code, *session.nested(code)):
        if session.code_id(each) in seen:
            h.assert_get(session, session.main, each, index, 0x51, "R-HOOK-5")
    h.assert_no_frees(h.SET, "R-HOOK-5", session)


@pytest.mark.req("R-HOOK-6")
def test_removed_hook_is_not_called_again(session: Session) -> None:
    """Removed hook is not called again."""
    ids = [session.add_hook(session.main, Hook(tag)) for tag in (1, 2, 3)]
    session.remove_hook(session.main, ids[1])
    code = session.new_code(session.main)
    got = sorted(tag for tag, _ in _calls(session))
    assert got == [1, 3], (
        f"after {h.REMOVE_HOOK} hooks 1 and 3 must still run, 2 never "
        f"(R-HOOK-6); tags called: {got}"
    )
    session.remove_hook(session.main, ids[0])
    session.remove_hook(session.main, ids[2])
    session.drop(code)
    session.new_code(session.main)
    assert _calls(session) == [], "removed hooks called (R-HOOK-6)"


@pytest.mark.req("R-HOOK-7")
def test_removing_unknown_hook_raises_value_error(session: Session) -> None:
    """Removing an unknown hook raises ValueError."""
    kept = session.add_hook(session.main, Hook(1))
    gone = session.add_hook(session.main, Hook(2))
    session.remove_hook(session.main, gone)
    for bad in (gone, -1, 10_000):
        with h.api_error(h.REMOVE_HOOK, "ValueError", "R-HOOK-7"):
            session.remove_hook(session.main, bad)
    code = session.new_code(session.main)
    assert _calls(session) == [(1, session.code_id(code))], (
        f"a failed {h.REMOVE_HOOK} changed the chain (R-HOOK-7)"
    )
    session.remove_hook(session.main, kept)


def _assert_failure_is_unraisable(
    session: Session, action: HookAction, exception: str, req: str
) -> None:
    """Run a chain whose middle hook fails by ``action``.

    The construction must succeed, every hook must run, the failure must
    be reported unraisable as ``exception`` once and nothing left pending.
    """
    for hook in (Hook(1), Hook(2, action), Hook(3)):
        session.add_hook(session.main, hook)
    try:
        code = session.new_code(session.main)
    except ApiError as exc:
        pytest.fail(
            f"a hook failing by {action.value} failed the construction "
            f"with {exc.exc_type} ({req})"
        )
    code_id = session.code_id(code)
    got = _calls(session)
    assert got == [(1, code_id), (2, code_id), (3, code_id)], (
        f"hooks after one failing by {action.value} must still run "
        f"({req}): {got}"
    )
    unraisable = session.take_unraisable()
    assert unraisable == [exception], (
        f"a hook failing by {action.value} must be reported as an "
        f"unraisable {exception} once ({req}); got {unraisable}"
    )
    assert session.pending_error() is None, (
        f"a hook failing by {action.value} left an exception pending ({req})"
    )


@pytest.mark.req("R-HOOK-8")
def test_failing_hook_is_reported_unraisable(session: Session) -> None:
    """A hook that raises, between two others: reported unraisable."""
    _assert_failure_is_unraisable(
        session, HookAction.FAIL, "RuntimeError", "R-HOOK-8"
    )


@pytest.mark.req("R-HOOK-9")
@pytest.mark.isolated
def test_hook_constructing_code_runs_whole_chain(session: Session) -> None:
    """Hook constructing code runs whole chain."""
    session.add_hook(session.main, Hook(1))
    session.add_hook(session.main, Hook(2, HookAction.NEW_CODE))
    session.add_hook(session.main, Hook(3))
    code = session.new_code(session.main)
    outer = session.code_id(code)
    got = _calls(session)
    inner = [c for _, c in got if c != outer]
    assert len(inner) == 3, (
        f"the code object made inside hook 2 must see each of the 3 hooks "
        f"once (R-HOOK-9): {got}"
    )
    assert len(set(inner)) == 1, (
        f"the code object made inside hook 2 must see each of the 3 hooks "
        f"once (R-HOOK-9): {got}"
    )
    assert got == [
        (1, outer),
        (2, outer),
        (1, inner[0]),
        (2, inner[0]),
        (3, inner[0]),
        (3, outer),
    ], (
        f"unexpected hook order for a re-entrant construction "
        f"(R-HOOK-4, R-HOOK-9): {got}"
    )


@pytest.mark.req("R-HOOK-10")
def test_hook_capacity_and_exhaustion(session: Session) -> None:
    """Hook capacity and exhaustion."""
    ids = []
    for n in range(MIN_CONSTRUCTOR_HOOKS):
        try:
            ids.append(session.add_hook(session.main, Hook(n)))
        except ApiError as exc:
            pytest.fail(
                f"{h.ADD_HOOK} failed ({exc.exc_type}) after {n} "
                f"hooks; R-HOOK-10 requires {MIN_CONSTRUCTOR_HOOKS}"
            )
    assert len(set(ids)) == len(ids), f"{h.ADD_HOOK} reused an id: {ids}"
    error: ApiError | None = None
    for _ in range(h.REQUEST_LIMIT):
        try:
            ids.append(session.add_hook(session.main, Hook(15)))
        except ApiError as exc:
            error = exc
            break
    else:
        pytest.skip(f"{h.ADD_HOOK} accepted {h.REQUEST_LIMIT} hooks")
    assert error.exc_type == "RuntimeError", (
        f"{h.ADD_HOOK} must fail with RuntimeError when full "
        f"(R-HOOK-10); got {error.exc_type}"
    )
    session.new_code(session.main)
    assert len(_calls(session)) == len(ids), (
        "every registered hook must run once (R-HOOK-1, R-HOOK-10)"
    )


@pytest.mark.req("R-HOOK-11")
def test_chain_changes_during_hook_apply_next_time(session: Session) -> None:
    """Chain changes during hook apply next time."""
    session.add_hook(session.main, Hook(1, HookAction.REMOVE_HOOK, value=3))
    session.add_hook(session.main, Hook(3))
    first = session.code_id(session.new_code(session.main))
    second = session.code_id(session.new_code(session.main))
    got = _calls(session)
    assert got == [(1, first), (3, first), (1, second)], (
        f"a hook removed by an earlier hook must still run for the "
        f"construction under way, not for the next (R-HOOK-11): {got}"
    )
    session.add_hook(session.main, Hook(4, HookAction.ADD_HOOK, value=5))
    third = session.code_id(session.new_code(session.main))
    fourth = session.code_id(session.new_code(session.main))
    got = _calls(session)
    assert got == [
        (1, third),
        (4, third),
        (1, fourth),
        (4, fourth),
        (5, fourth),
    ], (
        f"a hook added by a hook must run from the next construction "
        f"(R-HOOK-11): {got}"
    )
    assert session.take_unraisable() == [], "hook actions failed"


@pytest.mark.req("R-HOOK-12")
def test_hook_failing_without_exception_is_a_system_error(
    session: Session,
) -> None:
    """A hook returning -1 without an exception is an unraisable error."""
    _assert_failure_is_unraisable(
        session, HookAction.FAIL_WITHOUT_EXCEPTION, "SystemError", "R-HOOK-12"
    )


@pytest.mark.req("R-HOOK-13")
def test_hook_ids_are_never_reused(session: Session) -> None:
    """Hook IDs are never reused within an interpreter."""
    seen: list[int] = []
    kept = session.add_hook(session.main, Hook(1))
    seen.append(kept)
    for round_ in range(3 * MIN_CONSTRUCTOR_HOOKS):
        hook_id = session.add_hook(session.main, Hook(2 + round_ % 4))
        assert hook_id not in seen, (
            f"{h.ADD_HOOK} returned ID {hook_id} again after it was "
            f"removed (R-HOOK-13); earlier IDs {seen}"
        )
        seen.append(hook_id)
        session.remove_hook(session.main, hook_id)
        with h.api_error(h.REMOVE_HOOK, "ValueError", "R-HOOK-13"):
            session.remove_hook(session.main, hook_id)
    code = session.new_code(session.main)
    assert _calls(session) == [(1, session.code_id(code))], (
        "removing stale IDs removed another hook (R-HOOK-13)"
    )
