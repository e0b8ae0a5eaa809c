"""Allocation failure: errors are MemoryError and operations atomic.

``fail_allocations(0, n)`` makes the next ``n`` allocations fail.  Which
operations allocate is the implementation's business, so each test repeats
its operation on fresh objects until one fails, and checks every failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import pytest

from ..adapter import (
    MIN_CONSTRUCTOR_HOOKS,
    MIN_INDICES,
    ApiError,
    Capability,
    FreeFunc,
    Handle,
    Hook,
    HookAction,
    Session,
)
from ..evidence import Deviation, PreconditionFailed
from . import helpers as h

pytestmark = pytest.mark.requires(Capability.ALLOC_FAILURE)

#: Fresh objects to try before concluding that nothing allocates.
ATTEMPTS = 64


@contextmanager
def _no_memory(session: Session) -> Iterator[None]:
    session.fail_allocations(0, 1 << 30)
    try:
        yield
    finally:
        session.fail_allocations(0, 0)


def _set_without_memory(
    session: Session,
) -> tuple[list[object], int, int, list[tuple[int, str | None]]]:
    """Store out-of-line values with every allocation failing.

    Returns the code objects (each holding 0x100 + n under ``kept``), the
    ``kept`` and ``fresh`` indices, and the (n, exception) of each failed
    Set of 0x200 + n under ``fresh``.
    """
    codes = [session.new_code(session.main) for _ in range(ATTEMPTS)]
    kept = session.request_index(session.main, FreeFunc(1))
    for n, code in enumerate(codes):
        session.set_extra(session.main, code, kept, 0x100 + n)
    # Requested only now, so that storage sized for the indices that
    # existed at the first Set (stock CPython's co_extra block, a
    # per-object table) has to grow: a Set that needs no memory proves
    # nothing about failure.
    fresh = session.request_index(session.main, FreeFunc(2))
    failed = []
    with _no_memory(session):
        for n, code in enumerate(codes):
            try:
                session.set_extra(session.main, code, fresh, 0x200 + n)
            except ApiError as exc:
                failed.append((n, exc.exc_type))
    assert failed, (
        f"{h.SET} of {ATTEMPTS} out-of-line values never needed memory; "
        f"R-ALLOC-1 cannot hold"
    )
    return codes, kept, fresh, failed


@pytest.mark.req("R-ALLOC-1")
def test_failed_set_reports_memory_error(session: Session) -> None:
    """A failed Set reports MemoryError."""
    _, _, _, failed = _set_without_memory(session)
    for _, error in failed:
        if error != "MemoryError":
            raise Deviation(
                f"{h.SET} without memory must fail with MemoryError "
                f"(R-ALLOC-1); got {error or 'no exception set'}",
                requirement="R-ALLOC-1",
                function=h.SET,
                expected={"exception": "MemoryError"},
                actual={"exception": error},
                exception=error,
            )
    session.take_free_calls()


@pytest.mark.req("R-ALLOC-2", "R-STORE-11")
@pytest.mark.isolated
def test_failed_set_loses_nothing(session: Session) -> None:
    """Failed set loses nothing."""
    codes, kept, fresh, failures = _set_without_memory(session)
    failed = {n for n, _ in failures}
    both = "R-ALLOC-2 R-STORE-11"
    h.assert_no_frees(h.SET, both, session)
    for n, code in enumerate(codes):
        h.assert_get(session, session.main, code, kept, 0x100 + n, both)
        if n in failed:
            h.assert_get(session, session.main, code, fresh, 0, "R-ALLOC-2")
    for code in codes:
        session.drop(code)
    # The values of failed Sets still belong to the caller: destruction
    # never frees them (that it frees the stored ones is R-FREE-3's).
    callers = {0x200 + n for n in failed}
    h.assert_frees(
        "code object destruction",
        "R-ALLOC-2",
        [f for f in h.frees(session) if f[1] in callers],
        [],
    )


@pytest.mark.req("R-ALLOC-3")
def test_failed_request_consumes_no_index(session: Session) -> None:
    """Failed request consumes no index."""
    first = session.request_index(session.main, None)
    errors: list[str | None] = []
    with _no_memory(session):
        for _ in range(300):
            try:
                session.request_index(session.main, FreeFunc(1))
            except ApiError as exc:
                errors.append(exc.exc_type)
            else:
                break
    assert set(errors) <= {"MemoryError"}, (
        f"{h.REQUEST} without memory must fail with MemoryError "
        f"(R-ALLOC-3); got {sorted(map(str, set(errors)))}"
    )
    if not errors:
        return  # Requests need no memory here: nothing to consume.
    got = []
    for _ in range(MIN_INDICES - 1):
        try:
            got.append(session.request_index(session.main, None))
        except ApiError:
            break  # Exhausted: how many there are is R-INDEX-2's.
    assert first not in got, f"{h.REQUEST} returned {first} twice"
    assert len(set(got)) == len(got), (
        f"{h.REQUEST} returned duplicates after failures (R-ALLOC-3)"
    )


@pytest.mark.req("R-ALLOC-4")
@pytest.mark.requires(Capability.HOOKS)
@pytest.mark.isolated
def test_failed_construction_calls_no_hook(session: Session) -> None:
    """Failed construction calls no hook."""
    session.request_index(session.main, FreeFunc(1))
    session.add_hook(session.main, Hook(1))
    with _no_memory(session):
        for nested in (0, 2):
            with h.api_error(h.CONSTRUCT, "MemoryError", "R-ALLOC-4"):
                session.new_code(session.main, nested=nested)
    calls = session.take_hook_calls()
    assert calls == [], (
        f"a construction that failed for lack of memory called hooks "
        f"(R-ALLOC-4): {calls}"
    )
    h.assert_no_frees(h.CONSTRUCT, "R-ALLOC-4", session)
    session.new_code(session.main)
    assert len(session.take_hook_calls()) == 1, "hook lost (R-ALLOC-4)"


@pytest.mark.req("R-ALLOC-5")
@pytest.mark.requires(Capability.HOOKS)
def test_failed_hook_registration_registers_nothing(
    session: Session,
) -> None:
    """Failed hook registration registers nothing."""
    errors: list[str | None] = []
    with _no_memory(session):
        for _ in range(ATTEMPTS):
            try:
                session.add_hook(session.main, Hook(2))
            except ApiError as exc:
                errors.append(exc.exc_type)
    assert set(errors) <= {"MemoryError"}, (
        f"{h.ADD_HOOK} without memory must fail with MemoryError "
        f"(R-ALLOC-5); got {sorted(map(str, set(errors)))}"
    )
    failures = len(errors)
    assert failures, f"{h.ADD_HOOK} never needed memory (R-ALLOC-5)"
    code = session.new_code(session.main)
    calls = session.take_hook_calls()
    assert len(calls) == ATTEMPTS - failures, (
        f"{failures} failed {h.ADD_HOOK} calls left hooks registered "
        f"(R-ALLOC-5): {len(calls)} calls for one construction"
    )
    session.drop(code)


# -- every allocation of every operation -------------------------------------
#
# fail_allocations(k, 1) lets the first k allocations succeed and fails
# the next one.  Each test repeats one operation on a fresh target with
# k = 0, 1, 2, ... until it completes: an operation that allocates n
# times is then seen failing at each of its n allocations.  Every failure
# must raise MemoryError and change nothing.  That it leaks nothing is
# checked by the session's leak oracle when the implementation counts its
# heap blocks (Capability.LIVE_BLOCKS, leaks.py): a failure may leave
# grown capacity in a table the interpreter keeps, but by the time the
# session is closed everything must be freed.

#: How many allocation points of one operation are tried.  A real
#: interpreter's code-object construction (compile, marshal) allocates far
#: more often than the storage operations: past this bound the operation is
#: judged on the points tried, since allocating often is no deviation.
MAX_ALLOCATIONS = 64


def _at_each_allocation(
    session: Session,
    function: str,
    req: str,
    operation: Callable[[], object],
    unchanged: Callable[[], None],
) -> int:
    """Fail ``operation`` at its 1st, 2nd, ... allocation until it succeeds.

    ``unchanged`` checks, after each failure, that nothing changed.
    Returns how many allocations failed before the operation completed,
    or MAX_ALLOCATIONS when it had not completed by then.
    """
    for k in range(MAX_ALLOCATIONS):
        session.fail_allocations(k, 1)
        error: ApiError | None = None
        try:
            operation()
        except ApiError as exc:
            error = exc
        session.fail_allocations(0, 0)
        if error is not None and error.exc_type != "MemoryError":
            _fails_anyway(function, operation, error)
        if error is not None:
            assert error.exc_type == "MemoryError", (
                f"{function} failing at allocation {k + 1} must raise "
                f"MemoryError ({req}); it raised "
                f"{error.exc_type or 'no exception'}"
            )
            unchanged()
            continue
        return k
    return MAX_ALLOCATIONS


class FailsWithoutInjection(PreconditionFailed):
    """The operation fails with no allocation failure armed as well.

    Its failure is then not about memory (an exhausted index space, say)
    and belongs to another requirement: the test ends in ``error``.
    """


def _fails_anyway(
    function: str, operation: Callable[[], object], error: ApiError
) -> None:
    """Raise FailsWithoutInjection if ``operation`` fails unarmed too."""
    try:
        operation()
    except ApiError as again:
        raise FailsWithoutInjection(
            f"{function} fails without any allocation failure armed "
            f"({again.exc_type or 'no exception set'}), as it did with one "
            f"({error.exc_type or 'no exception set'}): its failure is not "
            f"about memory",
            function=function,
            actual=again.exc_type,
        ) from None


@pytest.mark.req("R-ALLOC-1", "R-ALLOC-2")
def test_set_fails_cleanly_at_every_allocation(session: Session) -> None:
    """Set fails cleanly at each of its allocations, on many objects.

    R-ALLOC-1, R-ALLOC-2: each failed Set raises MemoryError, the slot
    keeps its previous value, no free function runs, nothing leaks.
    Many code objects are used so that the implementation's out-of-line
    table has to grow (a second, rarer allocation).
    """
    interp = session.main
    kept = session.request_index(interp, FreeFunc(1))
    codes = [session.new_code(interp) for _ in range(40)]
    for n, code in enumerate(codes):
        session.set_extra(interp, code, kept, 0x100 + n)
    fresh = session.request_index(interp, FreeFunc(2))
    failures = 0
    for n, code in enumerate(codes):

        def unchanged(n: int = n, code: Handle = code) -> None:
            h.assert_no_frees(h.SET, "R-ALLOC-2", session)
            h.assert_get(session, interp, code, kept, 0x100 + n, "R-ALLOC-2")
            h.assert_get(session, interp, code, fresh, 0, "R-ALLOC-2")

        failures += _at_each_allocation(
            session,
            h.SET,
            "R-ALLOC-1",
            partial(session.set_extra, interp, code, fresh, 0x200 + n),
            unchanged,
        )
        h.assert_get(session, interp, code, fresh, 0x200 + n, "R-ALLOC-2")
    assert failures, f"{h.SET} never allocated; R-ALLOC-1 cannot hold"
    h.assert_no_frees(h.SET, "R-ALLOC-2", session)
    for code in codes:
        session.drop(code)
    h.frees(session)


@pytest.mark.req("R-ALLOC-3")
def test_request_fails_cleanly_at_every_allocation(session: Session) -> None:
    """Requests fail cleanly at each of their allocations.

    R-ALLOC-3: every failed request raises MemoryError and consumes no
    index, so MIN_INDICES requests, each retried until it succeeds,
    still get MIN_INDICES distinct indices.
    """
    interp = session.main
    got: list[int] = []
    failures = 0
    for _ in range(MIN_INDICES):
        try:
            failures += _at_each_allocation(
                session,
                h.REQUEST,
                "R-ALLOC-3",
                lambda: got.append(session.request_index(interp, FreeFunc(1))),
                lambda: None,
            )
        except FailsWithoutInjection:
            # The indices ran out: how many there are, and how that
            # fails, is R-INDEX-2's and R-INDEX-3's question.
            break
    assert len(set(got)) == len(got), (
        f"{h.REQUEST} returned duplicates after failures (R-ALLOC-3): {got}"
    )
    if not failures:
        pytest.skip(f"{h.REQUEST} never allocated: nothing to consume")


@pytest.mark.req("R-ALLOC-5")
@pytest.mark.requires(Capability.HOOKS)
def test_hook_registration_fails_cleanly_at_every_allocation(
    session: Session,
) -> None:
    """Hook registrations fail cleanly at each of their allocations.

    R-ALLOC-5: a failed registration raises MemoryError and registers
    nothing: after MIN_CONSTRUCTOR_HOOKS registrations, each retried
    until it succeeds, one construction calls exactly that many hooks,
    in registration order.
    """
    interp = session.main
    failures = 0
    for tag in range(MIN_CONSTRUCTOR_HOOKS):
        failures += _at_each_allocation(
            session,
            h.ADD_HOOK,
            "R-ALLOC-5",
            partial(session.add_hook, interp, Hook(tag)),
            lambda: None,
        )
    code = session.new_code(interp)
    tags = [call.tag for call in session.take_hook_calls()]
    assert tags == list(range(MIN_CONSTRUCTOR_HOOKS)), (
        f"after {failures} failed {h.ADD_HOOK} calls one construction "
        f"must call the {MIN_CONSTRUCTOR_HOOKS} registered hooks in order "
        f"(R-ALLOC-5); it called {tags}"
    )
    session.drop(code)


@pytest.mark.req("R-ALLOC-4")
@pytest.mark.requires(Capability.HOOKS)
@pytest.mark.parametrize("nested", [0, 3])
@pytest.mark.parametrize("hook_stores", [False, True])
def test_construction_fails_cleanly_at_every_allocation(
    session: Session,
    nested: int,
    hook_stores: bool,
) -> None:
    """Construction fails cleanly at each of its allocations.

    R-ALLOC-4: with a consumer active, a construction that cannot
    allocate fails with MemoryError, calls no hook for the object it
    failed to make, and (nested code objects already made are released)
    leaks nothing.  With a hook that stores a value in every new code
    object, releasing the nested ones frees those values while the
    MemoryError is pending: it must still be the error reported.
    """
    interp = session.main
    index = session.request_index(interp, FreeFunc(1))
    if hook_stores:
        hook = Hook(1, HookAction.SET_EXTRA, index=index, value=0x77)
    else:
        hook = Hook(1)
    session.add_hook(interp, hook)
    made: list[Handle] = []

    def construct() -> None:
        made.append(session.new_code(interp, nested=nested))

    def unchanged() -> None:
        calls = session.take_hook_calls()
        # Nested code objects that were complete saw the hook; the failed
        # object never did, so at most `nested` calls.
        assert len(calls) <= nested, (
            f"a construction that failed for lack of memory called hooks "
            f"for the object it failed to make (R-ALLOC-4): {calls}"
        )
        # Only the values the hook stored in released nested objects.
        freed = h.frees(session)
        expected = [(1, 0x77)] * len(calls) if hook_stores else []
        assert freed == expected, (
            f"a failed construction freed {freed} (R-ALLOC-4)"
        )

    failures = _at_each_allocation(
        session, h.CONSTRUCT, "R-ALLOC-4", construct, unchanged
    )
    if not made:
        # Not complete after MAX_ALLOCATIONS points, each of which failed
        # cleanly: the requirement is judged on those.
        return
    calls = session.take_hook_calls()
    assert len(calls) == nested + 1, (
        f"the construction that succeeded after {failures} failures must "
        f"call the hook once per code object (R-ALLOC-4); calls: {calls}"
    )
    for code in made:
        session.drop(code)
    h.frees(session)


@pytest.mark.req("R-ALLOC-4")
@pytest.mark.requires(Capability.COPY)
def test_unmarshal_fails_cleanly_at_every_allocation(session: Session) -> None:
    """Unmarshalling a code object fails cleanly at each allocation.

    R-ALLOC-4: copying by unmarshal constructs the nested code objects
    again; a failure at any allocation raises MemoryError and leaks
    nothing, and the original keeps its values.
    """
    interp = session.main
    index = session.request_index(interp, FreeFunc(1))
    original = session.new_code(interp, nested=2)
    session.set_extra(interp, original, index, 0x51)
    copies: list[Handle] = []

    def unchanged() -> None:
        h.assert_no_frees(h.CONSTRUCT, "R-ALLOC-4", session)
        h.assert_get(session, interp, original, index, 0x51, "R-ALLOC-4")

    _at_each_allocation(
        session,
        h.CONSTRUCT,
        "R-ALLOC-4",
        lambda: copies.append(session.copy_code(interp, original, "marshal")),
        unchanged,
    )
    for code in [*copies, original]:
        session.drop(code)
    h.assert_frees(h.CONSTRUCT, "R-ALLOC-4", h.frees(session), [(1, 0x51)])
