"""Assertions and constants shared by the conformance tests.

Imported as ``from . import helpers as h``.  Every assertion takes the name
of the C function it checks first and the requirement ID, so that a
failure message says which call broke which requirement.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import pytest

from ..adapter import Session
from ..contract import ADD_HOOK as ADD_HOOK
from ..contract import (
    COMPARE_EXCHANGE,
    ApiError,
    FreeAction,
    FreeCall,
    FreeFunc,
    Handle,
)
from ..contract import CONSTRUCT as CONSTRUCT
from ..contract import GET as GET
from ..contract import HAS_INLINE as HAS_INLINE
from ..contract import RELEASE as RELEASE
from ..contract import REMOVE_HOOK as REMOVE_HOOK
from ..contract import REQUEST as REQUEST
from ..contract import SET as SET
from ..contract import WORD_BITS as WORD_BITS
from ..evidence import Deviation, PreconditionFailed

#: PyUnstable_Code_CompareExchangeExtra, by a name that fits messages.
CAS = COMPARE_EXCHANGE

#: Opaque values consumers store (R-STORE-3): small integers, (void *)1,
#: odd values, the top bit alone, all ones.
OPAQUE_VALUES: tuple[int, ...] = (
    1,
    2,
    3,
    0x7F,
    int("01" * (WORD_BITS // 2), 2),
    int("10" * (WORD_BITS // 2), 2) | 1,
    2 ** (WORD_BITS - 1),
    2**WORD_BITS - 1,
)

#: How many requests a test makes before it gives up on exhaustion.
REQUEST_LIMIT = 1 << 16


@contextmanager
def api_error(function: str, exc_type: str, req: str) -> Iterator[None]:
    """Expect the call in the block to fail with ``exc_type`` set."""
    caught: ApiError | None = None
    try:
        yield
    except ApiError as exc:
        caught = exc
    if caught is None:
        raise Deviation(
            f"{function} must fail with {exc_type} ({req}); it succeeded",
            requirement=req,
            function=function,
            expected={"exception": exc_type},
            actual="success",
        )
    if caught.exc_type != exc_type:
        raise Deviation(
            f"{function} must fail with {exc_type} ({req}); it failed "
            f"with {caught.exc_type or 'no exception set'}",
            requirement=req,
            function=function,
            expected={"exception": exc_type},
            actual={"exception": caught.exc_type},
            exception=caught.exc_type,
        )


def frees(
    session: Session, *, null: bool = False, tags: Iterable[int] = ()
) -> list[tuple[int, int]]:
    """Take the recorded free calls as (tag, value) pairs, in order.

    Calls with NULL are left out unless ``null`` is true: whether NULL
    is ever freed is R-FREE-4's question alone, and every other test
    judges only the values it stored.  ``tags`` keeps only the calls of
    those free functions (the indices under test).
    """
    wanted = set(tags)
    return [
        (call.tag, call.value)
        for call in session.take_free_calls()
        if (null or call.value != 0) and (not wanted or call.tag in wanted)
    ]


def calls_of(session: Session, *, null: bool = False) -> list[FreeCall]:
    """Take the recorded free calls, without the NULL ones (see frees)."""
    return [
        call for call in session.take_free_calls() if null or call.value != 0
    ]


def request_self_acting(
    session: Session, action: FreeAction, code: Handle, value: int = 0
) -> int:
    """Request an index whose free function acts on that same index.

    A free function is registered before its index is known, so guess
    the index from R-INDEX-6 (lowest free index first) and keep the
    request whose guess held; skip when no guess holds.
    """
    for guess in range(4):
        free = FreeFunc(10 + guess, action, code, guess, value)
        if session.request_index(session.main, free) == guess:
            return guess
    pytest.skip(f"{REQUEST} indices are not predictable (R-INDEX-6)")


def precondition(ok: object, message: str, **evidence: object) -> None:
    """Stop the test as an ``error`` when a set-up step did not work.

    Use for what the test needs before it can look at its requirement:
    the requirement's verdict must not move because of it.
    """
    if not ok:
        raise PreconditionFailed(f"set-up step failed: {message}", **evidence)


def assert_frees(
    function: str,
    req: str,
    actual: Iterable[tuple[int, int]] | Iterable[FreeCall],
    expected: Iterable[tuple[int, int]],
    *,
    ordered: bool = False,
) -> None:
    """Compare free calls, as a sequence or as a multiset."""
    got = [(c.tag, c.value) if isinstance(c, FreeCall) else c for c in actual]
    want = list(expected)
    if ordered:
        ok = got == want
    else:
        ok = Counter(got) == Counter(want)
    order = "in this order" if ordered else "each exactly once"
    if not ok:
        raise Deviation(
            f"{function} ({req}): free calls (tag, value) must be {want} "
            f"{order}; got {got}",
            requirement=req,
            function=function,
            expected={"frees": want},
            actual={"frees": got},
        )


def assert_own_free_functions(
    function: str,
    req: str,
    actual: Iterable[tuple[int, int]],
    owner: Callable[[int], int],
) -> None:
    """Assert that each value went to its own index's free function.

    ``owner(value)`` is the tag of the index the value was stored under.
    """
    got = list(actual)
    wrong = [(tag, value) for tag, value in got if tag != owner(value)]
    if wrong:
        raise Deviation(
            f"{function} ({req}): values went to another index's free "
            f"function, (tag, value): {wrong}; all calls: {got}",
            requirement=req,
            function=function,
            expected={"frees": [(owner(v), v) for _, v in got]},
            actual={"frees": got},
        )


def assert_no_frees(
    function: str, req: str, session: Session, *, null: bool = False
) -> None:
    """Assert that no free function was called with a non-NULL value.

    With ``null``, a call with NULL counts too (R-FREE-4).
    """
    assert_frees(function, req, frees(session, null=null), [])


def assert_get(
    session: Session,
    interp: Handle,
    code: Handle,
    index: int,
    expected: int,
    req: str,
) -> None:
    """Assert that Get succeeds and reads ``expected``."""
    try:
        value = session.get_extra(interp, code, index)
    except ApiError as exc:
        raise Deviation(
            f"{GET}(index {index}) failed with "
            f"{exc.exc_type or 'no exception set'} ({req})",
            requirement=req,
            function=GET,
            expected={"value": expected},
            actual={"return": -1},
            exception=exc.exc_type,
        ) from None
    if value != expected:
        raise Deviation(
            f"{GET}(index {index}) must read {expected:#x} ({req}); "
            f"read {value:#x}",
            requirement=req,
            function=GET,
            expected={"value": expected},
            actual={"value": value},
        )


def exhaust_indices(session: Session, interp: Handle) -> list[int]:
    """Request indices until the request fails; return the indices.

    The failure itself is left to the caller to inspect: the last request
    is repeated inside :func:`api_error` by the tests that need it.  Skip
    when the implementation has no practical limit.
    """
    indices: list[int] = []
    for _ in range(REQUEST_LIMIT):
        try:
            indices.append(session.request_index(interp, None))
        except ApiError:
            return indices
    pytest.skip(f"{REQUEST} never ran out in {REQUEST_LIMIT} requests")


def run_threads(work: Callable[[int], None], count: int) -> None:
    """Run ``work(n)`` for each n below ``count``, one thread each.

    The threads start together (a barrier), so that their calls overlap;
    the first exception a thread raised is raised again here.
    """
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def main(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as exc:  # Re-raised in the calling thread.
            errors.append(exc)

    threads = [threading.Thread(target=main, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def assert_same_calls(
    what: str,
    req: str,
    got: Counter[tuple[int, int]],
    expected: Counter[tuple[int, int]],
) -> None:
    """Compare two multisets of (tag, value) calls; count the differences."""
    assert got == expected, (
        f"{what} ({req}): {sum((got - expected).values())} extra, "
        f"{sum((expected - got).values())} missing"
    )
