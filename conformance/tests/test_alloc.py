"""Allocation failure: errors are MemoryError and operations atomic.

``fail_allocations(0, n)`` makes the next ``n`` allocations fail.  Which
operations allocate is the implementation's business, so each test repeats
its operation on fresh objects until one fails, and checks every failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ..adapter import (
    MIN_INDICES,
    ApiError,
    Capability,
    FreeFunc,
    Hook,
    Session,
)
from ..evidence import Deviation
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
    """A failed Set reports MemoryError.

    R-ALLOC-1: "If Set cannot allocate storage it returns -1 with MemoryError."
    """
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
    """Failed set loses nothing.

    R-ALLOC-2: "After a Set failed for lack of memory, the slot holds its
    previous value, no free function was called, and the new value still
    belongs to the caller."
    """
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
    """Failed request consumes no index.

    R-ALLOC-3: "If a request cannot allocate it returns -1 with MemoryError and
    no index is consumed."
    """
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
    """Failed construction calls no hook.

    R-ALLOC-4: "If a code object's inline storage cannot be allocated,
    construction fails with MemoryError and no hook is called."
    """
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
    """Failed hook registration registers nothing.

    R-ALLOC-5: "If AddConstructorHook cannot allocate it returns -1 with
    MemoryError and the hook is not registered."
    """
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
