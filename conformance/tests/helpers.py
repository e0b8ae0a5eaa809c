"""Assertions and constants shared by the conformance tests.

Imported as ``from . import helpers as h``.  Every assertion takes the name
of the C function it checks first and the requirement ID, so that a
failure message says which call broke which requirement.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pytest

from ..adapter import ApiError, FreeCall, Handle, Session

REQUEST = "PyUnstable_Eval_RequestCodeExtraIndex"
RELEASE = "PyUnstable_Eval_ReleaseCodeExtraIndex"
GET = "PyUnstable_Code_GetExtra"
SET = "PyUnstable_Code_SetExtra"
CAS = "PyUnstable_Code_CompareExchangeExtra"
ADD_HOOK = "PyUnstable_Code_AddConstructorHook"
REMOVE_HOOK = "PyUnstable_Code_RemoveConstructorHook"
HAS_INLINE = "PyUnstable_Code_HasInlineExtra"
CONSTRUCT = "code object construction"

#: Pointer-sized words in the tested process.
WORD_BITS = 64 if sys.maxsize > 2**32 else 32

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
        pytest.fail(
            f"{function} must fail with {exc_type} ({req}); it succeeded"
        )
    assert caught.exc_type == exc_type, (
        f"{function} must fail with {exc_type} ({req}); it failed "
        f"with {caught.exc_type or 'no exception set'}"
    )


def frees(session: Session) -> list[tuple[int, int]]:
    """Take the recorded free calls as (tag, value) pairs, in order."""
    return [(call.tag, call.value) for call in session.take_free_calls()]


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
    assert ok, (
        f"{function} ({req}): free calls (tag, value) must be {want} "
        f"{order}; got {got}"
    )


def assert_no_frees(function: str, req: str, session: Session) -> None:
    """Assert that no free function was called."""
    assert_frees(function, req, frees(session), [])


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
        pytest.fail(f"{GET}(index {index}) failed with {exc.exc_type} ({req})")
    assert value == expected, (
        f"{GET}(index {index}) must read {expected:#x} ({req}); "
        f"read {value:#x}"
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
