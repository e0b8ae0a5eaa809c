"""Several interpreters sharing code objects."""

from __future__ import annotations

from typing import cast

import pytest

from ..adapter import (
    Capability,
    FreeFunc,
    Handle,
    Hook,
    OwnGilSession,
    Session,
)
from . import helpers as h

pytestmark = pytest.mark.requires(Capability.INTERPRETERS)

#: The kinds of second interpreter every test runs with: one sharing the
#: main interpreter's GIL (Py_NewInterpreter), and one with its own GIL
#: (PEP 684), whose results are R-INTERP-7's.
LEGACY = "legacy"
OWN_GIL = "own-gil"


def kinds(req: str) -> pytest.MarkDecorator:
    """Parametrise a test over interpreter kinds.

    The legacy run checks ``req``; the own-GIL run checks R-INTERP-7
    ("R-INTERP-1..6 hold for an interpreter with its own GIL") and needs
    Capability.OWN_GIL.
    """
    return pytest.mark.parametrize(
        "kind",
        [
            pytest.param(LEGACY, marks=pytest.mark.req(req), id=LEGACY),
            pytest.param(
                OWN_GIL,
                marks=[
                    pytest.mark.req("R-INTERP-7"),
                    pytest.mark.requires(Capability.OWN_GIL),
                ],
                id=OWN_GIL,
            ),
        ],
    )


def checked(kind: str, req: str) -> str:
    """Name the requirement a check of ``req`` charges in a ``kind`` run.

    In the own-GIL run ``req``'s rule is checked as part of R-INTERP-7,
    and a failure is R-INTERP-7's.
    """
    if kind == OWN_GIL:
        return f"{req} with an own-GIL interpreter, R-INTERP-7"
    return req


def new_interpreter(session: Session, kind: str) -> Handle:
    """Create a second interpreter of the given kind."""
    if kind == OWN_GIL:
        return cast(OwnGilSession, session).new_own_gil_interpreter()
    return session.new_interpreter()


def _same_index(session: Session, a: object, b: object) -> int:
    """Allocate the same index number in ``a`` (tag 1) and ``b`` (tag 2)."""
    first = session.request_index(a, FreeFunc(1))
    second = session.request_index(b, FreeFunc(2))
    while first != second:
        if first < second:
            first = session.request_index(a, FreeFunc(1))
        else:
            second = session.request_index(b, FreeFunc(2))
    return first


@kinds("R-INTERP-1")
def test_index_allocation_is_per_interpreter(
    session: Session, kind: str
) -> None:
    """Index allocation is per interpreter."""
    other = new_interpreter(session, kind)
    before = session.request_index(other, None)
    h.exhaust_indices(session, session.main)
    after = [session.request_index(other, None) for _ in range(100)]
    assert len({before, *after}) == 101, (
        f"{h.REQUEST} in a second interpreter returned duplicates after "
        f"the first ran out ({checked(kind, 'R-INTERP-1')})"
    )


@kinds("R-INTERP-1")
def test_fresh_interpreter_starts_at_index_zero(
    session: Session, kind: str
) -> None:
    """Fresh interpreter starts at index zero.

    R-INTERP-1 with R-INDEX-6: a new interpreter's indices do not continue
    another interpreter's numbering.
    """
    for _ in range(7):
        session.request_index(session.main, None)
    other = new_interpreter(session, kind)
    got = session.request_index(other, None)
    assert got == 0, (
        f"{h.REQUEST} in a fresh interpreter returned {got}, not 0: "
        f"indices are shared between interpreters "
        f"({checked(kind, 'R-INTERP-1')})"
    )


@kinds("R-INTERP-2")
def test_values_are_per_interpreter(session: Session, kind: str) -> None:
    """Values are per interpreter."""
    other = new_interpreter(session, kind)
    mains = session.new_code(session.main)
    others = session.new_code(other)
    index = _same_index(session, session.main, other)
    codes = [
        mains,
        others,
        session.new_code(session.main),
        session.new_code(other),
    ]
    for n, code in enumerate(codes):
        session.set_extra(session.main, code, index, 0x100 + n)
        h.assert_get(
            session, other, code, index, 0, checked(kind, "R-INTERP-2")
        )
        session.set_extra(other, code, index, 0x200 + n)
    for n, code in enumerate(codes):
        h.assert_get(
            session,
            session.main,
            code,
            index,
            0x100 + n,
            checked(kind, "R-INTERP-2"),
        )
        h.assert_get(
            session, other, code, index, 0x200 + n, checked(kind, "R-INTERP-2")
        )
    h.assert_no_frees(h.SET, checked(kind, "R-INTERP-2"), session)


def _values_in_both(
    session: Session, kind: str, base: int
) -> tuple[Handle, int, list[Handle]]:
    """Store under one index of two interpreters on two code objects.

    Return a new interpreter, the index and a code object of each; the
    main interpreter stores ``base + 0x10 + n`` on object n, the other
    ``base + 0x20 + n``.  Free calls so far are dropped: a Set that frees
    the other interpreter's value is R-INTERP-2's deviation (values
    shared), not the caller's.
    """
    other = new_interpreter(session, kind)
    index = _same_index(session, session.main, other)
    codes = [session.new_code(session.main), session.new_code(other)]
    for n, code in enumerate(codes):
        session.set_extra(session.main, code, index, base + 0x10 + n)
        session.set_extra(other, code, index, base + 0x20 + n)
    h.frees(session)
    return other, index, codes


@kinds("R-INTERP-3")
@pytest.mark.isolated
def test_value_freed_by_owner_free_function(
    session: Session, kind: str
) -> None:
    """Value freed by owner free function."""
    _, _, codes = _values_in_both(session, kind, 0x300)
    for code in codes:
        session.drop(code)
    owners = {0x310: 1, 0x311: 1, 0x320: 2, 0x321: 2}
    got = h.frees(session)
    # Whether every value is freed, and how often, is R-FREE-3's
    # question; this one asks only whose free function gets each.
    h.precondition(got, "code object destruction freed no value (R-FREE-3)")
    h.assert_own_free_functions(
        "code object destruction",
        checked(kind, "R-INTERP-3"),
        got,
        lambda v: owners.get(v, 0),
    )


@kinds("R-INTERP-4")
def test_foreign_code_uses_out_of_line_storage(
    session: Session, kind: str
) -> None:
    """Foreign code objects use out-of-line storage."""
    other = new_interpreter(session, kind)
    session.request_index(other, FreeFunc(2))
    # Constructed while the other interpreter has a consumer: inline
    # storage there if the implementation has any, none for this one.
    foreign = session.new_code(other)
    flags = session.co_flags(foreign)
    index = session.request_index(session.main, FreeFunc(1))
    session.set_extra(session.main, foreign, index, 0x41)
    h.assert_get(
        session,
        session.main,
        foreign,
        index,
        0x41,
        checked(kind, "R-INTERP-4"),
    )
    assert session.co_flags(foreign) == flags, (
        f"{h.SET} from another interpreter changed co_flags "
        f"({checked(kind, 'R-INTERP-4')})"
    )
    session.set_extra(session.main, foreign, index, 0)
    h.assert_frees(
        h.SET,
        checked(kind, "R-INTERP-4"),
        h.frees(session, tags=[1]),
        [(1, 0x41)],
    )


@kinds("R-INTERP-5")
@pytest.mark.requires(Capability.FINALIZE)
@pytest.mark.isolated
def test_finalization_frees_only_own_values(
    session: Session, kind: str
) -> None:
    """Finalization frees only own values."""
    other, index, codes = _values_in_both(session, kind, 0x500)
    session.end_interpreter(other)
    h.assert_frees(
        "interpreter finalization",
        checked(kind, "R-INTERP-5"),
        h.frees(session),
        [(2, 0x520), (2, 0x521)],
    )
    for n, code in enumerate(codes):
        h.assert_get(
            session,
            session.main,
            code,
            index,
            0x510 + n,
            checked(kind, "R-INTERP-5"),
        )
    for code in codes:
        session.drop(code)
    # The main interpreter's values are then R-FREE-3's business; the
    # ended interpreter's must not come back.
    h.assert_frees(
        "code object destruction",
        checked(kind, "R-INTERP-5"),
        [f for f in h.frees(session) if f[1] in (0x520, 0x521)],
        [],
    )


@kinds("R-INTERP-6")
@pytest.mark.requires(Capability.HOOKS)
def test_hooks_are_per_interpreter(session: Session, kind: str) -> None:
    """Hooks are per interpreter."""
    other = new_interpreter(session, kind)
    session.add_hook(session.main, Hook(1))
    session.add_hook(other, Hook(2))
    mine = session.new_code(session.main)
    # No nested code objects: whether they reach hooks is R-HOOK-2's.
    theirs = session.new_code(other)
    got = sorted((c.tag, c.code_id) for c in session.take_hook_calls())
    expected = sorted(
        [(1, session.code_id(mine)), (2, session.code_id(theirs))]
    )
    assert got == expected, (
        f"hooks must only see their own interpreter's constructions "
        f"({checked(kind, 'R-INTERP-6')}): {got}"
    )


@pytest.mark.req("R-INTERP-7")
@pytest.mark.requires(Capability.OWN_GIL, Capability.THREADS, Capability.HOOKS)
@pytest.mark.isolated
def test_own_gil_interpreters_keep_the_rules_in_parallel(
    session: Session,
) -> None:
    """Interpreters running in parallel keep indices, values, hooks apart."""
    other = cast(OwnGilSession, session).new_own_gil_interpreter()
    interps = [session.main, other]
    shared = [session.new_code(session.main) for _ in range(8)]
    for k, interp in enumerate(interps):
        session.add_hook(interp, Hook(20 + k))
    threads, rounds = 4, 100
    wrong: list[str] = []
    made: dict[int, list[object]] = {}
    indices: dict[int, int] = {}

    def work(n: int) -> None:
        interp = interps[n % 2]
        index = session.request_index(interp, FreeFunc(1 + n % 2))
        indices[n] = index
        made[n] = [session.new_code(interp) for _ in range(10)]
        for r in range(rounds):
            value = (n + 1) << 16 | r << 1 | 1
            for code in shared + made[n]:
                session.set_extra(interp, code, index, value)
                got = session.get_extra(interp, code, index)
                if got != value:
                    wrong.append(
                        f"thread {n} stored {value:#x}, read {got:#x}"
                    )

    h.run_threads(work, threads)
    assert not wrong, (
        f"values leaked between interpreters (R-INTERP-7): {wrong[:3]}"
    )
    hooks = {(c.tag, c.code_id) for c in session.take_hook_calls()}
    for n, codes in made.items():
        for code in codes:
            code_id = session.code_id(code)
            assert (20 + n % 2, code_id) in hooks, "a hook missed its code"
            assert (20 + (n + 1) % 2, code_id) not in hooks, (
                "a hook ran for another interpreter's code (R-INTERP-7)"
            )
    h.frees(session)
    session.end_interpreter(other)
    freed = h.frees(session)
    assert freed, "ending an interpreter freed none of its values"
    assert {tag for tag, _ in freed} == {2}, (
        f"ending one interpreter freed values with another's free "
        f"function (R-INTERP-7): {sorted({tag for tag, _ in freed})}"
    )
    for n in (0, 2):
        value = (n + 1) << 16 | (rounds - 1) << 1 | 1
        for code in shared:
            h.assert_get(
                session, session.main, code, indices[n], value, "R-INTERP-7"
            )
