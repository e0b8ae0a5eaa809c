"""Differential test: random operation sequences against the model.

A Hypothesis state machine applies each operation to the implementation
under test and to a fresh session of the model (:mod:`..model`), then
compares results, error classes, free calls, hook calls (with code ids
mapped between the two), unraisable errors and pending errors.

Index numbers and code ids are mapped too, so an implementation is not
required to number like the model where the PEP leaves it free.

Allocation failure is injected into the implementation only, around one
operation: a MemoryError must leave no trace (the model then skips the
operation), and success must match the model.  This keeps the test
independent of where exactly an implementation allocates.

The test names no requirement (marker ``contract``): a divergence is
reported as a failed test of the run, while the tests of each area say
which requirement is broken.

The plugin's default Hypothesis profile is derandomized;
``--coextra-hypothesis-profile=explore`` searches longer and at random.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import count

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .. import model, strategies
from ..adapter import (
    CO_INLINE_EXTRA,
    ApiError,
    Capability,
    FreeFunc,
    Handle,
    Hook,
    HookAction,
    Implementation,
)

#: At most this many indices and hooks, to keep states small.
MAX_INDICES = 8
MAX_HOOKS = 5

#: Operations that may allocate, per the PEP.
MAY_ALLOCATE = ("request", "set", "new_code", "copy", "add_hook")

Outcome = tuple[str, object]


def _call(function: Callable[[], object]) -> Outcome:
    """Run one side of an operation; return ("ok", value) or the error."""
    try:
        return ("ok", function())
    except ApiError as exc:
        return ("error", exc.exc_type)


class _Oracle(model.ModelSession):
    """The model, with a distinct code id for every object ever made."""

    reuse_addresses = False


class Differential(RuleBasedStateMachine):
    """The implementation and the model, driven in lock step."""

    def __init__(self, implementation: Implementation) -> None:
        """Open a session of ``implementation`` and one of the model."""
        super().__init__()
        self.caps = (
            implementation.capabilities & model.implementation.capabilities
        )
        self.impl = implementation.open_session()
        self.model = _Oracle()
        #: Code objects held on both sides: (impl handle, model handle).
        self.codes: list[tuple[Handle, Handle]] = []
        #: Allocated indices: (impl index, model index).
        self.indices: list[tuple[int, int]] = []
        #: Registered hooks: (impl id, model id).
        self.hooks: list[tuple[int, int]] = []
        self.values = count(1)
        self.step = ""
        #: Make every allocation of the impl fail in the next operation.
        self.no_memory = False

    # -- comparison -------------------------------------------------------

    def fail(self, what: str) -> None:
        """Report a divergence from the model."""
        pytest.fail(f"differs from the model after {self.step}: {what}")

    def known_ids(self) -> dict[int, int]:
        """Map the impl's code ids of held objects to the model's."""
        known: dict[int, int] = {}
        for mine, theirs in self.codes:
            impl_id = self.impl.code_id(mine)
            model_id = self.model.code_id(theirs)
            if known.setdefault(impl_id, model_id) != model_id:
                self.fail(f"two live code objects share id {impl_id:#x}")
        return known

    def check_effects(self, ordered_frees: bool = True) -> None:
        """Compare what the last operation did besides its result."""
        got = [(c.tag, c.value) for c in self.impl.take_free_calls()]
        want = [(c.tag, c.value) for c in self.model.take_free_calls()]
        same = got == want if ordered_frees else Counter(got) == Counter(want)
        if not same:
            self.fail(f"free calls (tag, value) {got}, model {want}")
        # The model never reuses a code id, so each of its ids stands for
        # one object, which has one id in the impl (whose ids may repeat
        # once objects die, e.g. those made and dropped inside hooks).
        to_impl = {m: i for i, m in self.known_ids().items()}
        impl_calls = self.impl.take_hook_calls()
        model_calls = self.model.take_hook_calls()
        if len(impl_calls) != len(model_calls):
            self.fail(f"hook calls {impl_calls}, model {model_calls}")
        for mine, theirs in zip(impl_calls, model_calls, strict=True):
            expected = to_impl.setdefault(theirs.code_id, mine.code_id)
            if mine.tag != theirs.tag or mine.code_id != expected:
                self.fail(f"hook calls {impl_calls}, model {model_calls}")
        unraisable = self.impl.take_unraisable()
        if unraisable != self.model.take_unraisable():
            self.fail(f"unraisable errors {unraisable}")
        pending = self.impl.pending_error()
        if pending is not None:
            self.fail(f"an error was left pending: {pending}")

    def both(
        self,
        name: str,
        impl_side: Callable[[], object],
        model_side: Callable[[], object],
    ) -> Outcome:
        """Run an operation on both sides; results must agree."""
        self.step = name
        if self.no_memory:
            self.step += " without memory"
            self.impl.fail_allocations(0, 1 << 30)
            try:
                mine = _call(impl_side)
            finally:
                self.impl.fail_allocations(0, 0)
            if mine == ("error", "MemoryError"):
                # Atomic: nothing happened, so the model does nothing.
                return mine
        else:
            mine = _call(impl_side)
        theirs = _call(model_side)
        if mine[0] != theirs[0] or (
            mine[0] == "error" and mine[1] != theirs[1]
        ):
            self.fail(f"result {mine}, model {theirs}")
        return mine if mine[0] == "error" else ("ok", (mine[1], theirs[1]))

    def hold(self, mine: Handle, theirs: Handle, fresh: bool) -> None:
        """Hold a new pair and its nested code objects; compare flags.

        ``fresh`` says that the pair was just constructed, so that extra
        bytes exist exactly when there is inline storage (R-FLAG-1).
        """
        self.codes.append((mine, theirs))
        if fresh and Capability.STORAGE_SIZE in self.caps:
            costs = (
                self.impl.extra_bytes(mine) > 0,
                self.model.extra_bytes(theirs) > 0,
            )
            if costs[0] != costs[1]:
                self.fail(f"extra bytes present: {costs[0]}, model {costs[1]}")
        flags = (
            self.impl.co_flags(mine) & CO_INLINE_EXTRA,
            self.model.co_flags(theirs) & CO_INLINE_EXTRA,
        )
        if flags[0] != flags[1]:
            self.fail(f"CO_INLINE_EXTRA {flags[0]:#x}, model {flags[1]:#x}")
        if Capability.INLINE_FLAG in self.caps:
            inline = (
                self.impl.has_inline_extra(mine),
                self.model.has_inline_extra(theirs),
            )
            if inline[0] != inline[1]:
                self.fail(f"HasInlineExtra {inline[0]}, model {inline[1]}")
        children = zip(
            self.impl.nested(mine), self.model.nested(theirs), strict=True
        )
        for child in children:
            self.hold(child[0], child[1], fresh=False)

    def index_pair(self, pick: int) -> tuple[int, int]:
        """Return an allocated index pair, or an invalid index on both."""
        if self.indices and pick >= 0:
            return self.indices[pick % len(self.indices)]
        return (pick, pick) if pick < 0 else (250, 250)

    # -- rules --------------------------------------------------------------

    @precondition(lambda self: len(self.indices) < MAX_INDICES)
    @rule(free=strategies.free_funcs())
    def request_index(self, free: FreeFunc | None) -> None:
        """PyUnstable_Eval_RequestCodeExtraIndex."""
        result = self.both(
            f"request_index({free})",
            lambda: self.impl.request_index(self.impl.main, free),
            lambda: self.model.request_index(self.model.main, free),
        )
        if result[0] == "ok":
            pair = result[1]
            assert isinstance(pair, tuple)
            self.indices.append(pair)
        self.check_effects()

    @precondition(lambda self: Capability.RELEASE in self.caps)
    @rule(pick=st.integers(-1, 7))
    def release_index(self, pick: int) -> None:
        """PyUnstable_Eval_ReleaseCodeExtraIndex, valid or not."""
        pair = self.index_pair(pick)
        result = self.both(
            f"release_index({pair})",
            lambda: self.impl.release_index(self.impl.main, pair[0]),
            lambda: self.model.release_index(self.model.main, pair[1]),
        )
        if result[0] == "ok":
            self.indices.remove(pair)
        self.check_effects(ordered_frees=False)

    @rule(nested=st.integers(0, 2), forge=st.booleans())
    def new_code(self, nested: int, forge: bool) -> None:
        """Construct a code object, maybe with forged flags."""
        flags = CO_INLINE_EXTRA if forge else 0
        result = self.both(
            f"new_code(nested={nested}, flags={flags:#x})",
            lambda: self.impl.new_code(
                self.impl.main, nested=nested, flags=flags
            ),
            lambda: self.model.new_code(
                self.model.main, nested=nested, flags=flags
            ),
        )
        if result[0] == "ok":
            pair = result[1]
            assert isinstance(pair, tuple)
            self.hold(pair[0], pair[1], fresh=True)
        self.check_effects()

    @precondition(lambda self: Capability.COPY in self.caps and self.codes)
    @rule(pick=st.integers(0, 7), how=strategies.copy_kinds())
    def copy_code(self, pick: int, how: str) -> None:
        """Copy a held code object with replace() or marshal."""
        mine, theirs = self.codes[pick % len(self.codes)]
        result = self.both(
            f"copy_code({how})",
            lambda: self.impl.copy_code(self.impl.main, mine, how),
            lambda: self.model.copy_code(self.model.main, theirs, how),
        )
        if result[0] == "ok":
            pair = result[1]
            assert isinstance(pair, tuple)
            self.hold(pair[0], pair[1], fresh=True)
        self.check_effects()

    @precondition(lambda self: self.codes)
    @rule(pick=st.integers(0, 7))
    def drop(self, pick: int) -> None:
        """Drop one held reference; maybe destroy the code object."""
        mine, theirs = self.codes.pop(pick % len(self.codes))
        self.step = "drop"
        nested = self.model.nested(theirs)
        for child in nested:
            self.model.drop(child)
        self.impl.drop(mine)
        self.model.drop(theirs)
        # Parent and nested objects may die together, in an order the
        # PEP does not fix: compare those free calls as a multiset.
        self.check_effects(ordered_frees=not nested)

    @precondition(lambda self: self.codes)
    @rule(code=st.integers(0, 7), index=st.integers(-1, 7))
    def get_extra(self, code: int, index: int) -> None:
        """PyUnstable_Code_GetExtra, valid index or not."""
        mine, theirs = self.codes[code % len(self.codes)]
        pair = self.index_pair(index)
        result = self.both(
            f"get_extra({pair})",
            lambda: self.impl.get_extra(self.impl.main, mine, pair[0]),
            lambda: self.model.get_extra(self.model.main, theirs, pair[1]),
        )
        if result[0] == "ok":
            values = result[1]
            assert isinstance(values, tuple)
            if values[0] != values[1]:
                self.fail(f"read {values[0]:#x}, model {values[1]:#x}")
        self.check_effects()

    @precondition(lambda self: self.codes)
    @rule(
        code=st.integers(0, 7),
        index=st.integers(-1, 7),
        kind=st.sampled_from(
            ["fresh", "fresh", "null", "same", "same", "opaque"]
        ),
        opaque=strategies.opaque_values(),
    )
    def set_extra(self, code: int, index: int, kind: str, opaque: int) -> None:
        """PyUnstable_Code_SetExtra with a new, NULL or the same value."""
        mine, theirs = self.codes[code % len(self.codes)]
        pair = self.index_pair(index)
        value = self.pick_value(theirs, pair[1], kind, opaque)
        self.both(
            f"set_extra({pair}, {value:#x})",
            lambda: self.impl.set_extra(self.impl.main, mine, pair[0], value),
            lambda: self.model.set_extra(
                self.model.main, theirs, pair[1], value
            ),
        )
        self.check_effects()

    def pick_value(
        self, theirs: Handle, index: int, kind: str, opaque: int
    ) -> int:
        """Return a value for Set; "same" re-stores the model's value."""
        if kind == "null":
            return 0
        if kind == "opaque":
            return opaque
        if kind == "same":
            try:
                return self.model.get_extra(self.model.main, theirs, index)
            except ApiError:
                return 0
        return next(self.values) << 4 | 1

    @precondition(
        lambda self: (
            Capability.HOOKS in self.caps and len(self.hooks) < MAX_HOOKS
        )
    )
    @rule(
        tag=st.integers(0, 15),
        action=strategies.hook_actions(),
        index=st.integers(0, 7),
    )
    def add_hook(self, tag: int, action: HookAction, index: int) -> None:
        """PyUnstable_Code_AddConstructorHook."""
        pair = self.index_pair(index)
        value = next(self.values) << 4 | 1
        result = self.both(
            f"add_hook({tag}, {action.value})",
            lambda: self.impl.add_hook(
                self.impl.main, Hook(tag, action, pair[0], value)
            ),
            lambda: self.model.add_hook(
                self.model.main, Hook(tag, action, pair[1], value)
            ),
        )
        if result[0] == "ok":
            ids = result[1]
            assert isinstance(ids, tuple)
            self.hooks.append(ids)
        self.check_effects()

    @precondition(lambda self: Capability.HOOKS in self.caps)
    @rule(pick=st.integers(-1, 7))
    def remove_hook(self, pick: int) -> None:
        """PyUnstable_Code_RemoveConstructorHook, known id or not."""
        if pick >= 0 and self.hooks:
            pair = self.hooks[pick % len(self.hooks)]
        else:
            pair = (-1, -1)
        result = self.both(
            f"remove_hook({pair})",
            lambda: self.impl.remove_hook(self.impl.main, pair[0]),
            lambda: self.model.remove_hook(self.model.main, pair[1]),
        )
        if result[0] == "ok":
            self.hooks.remove(pair)
        self.check_effects()

    @precondition(lambda self: Capability.ALLOC_FAILURE in self.caps)
    @rule(
        operation=st.sampled_from(MAY_ALLOCATE),
        code=st.integers(0, 7),
        index=st.integers(0, 7),
    )
    def without_memory(self, operation: str, code: int, index: int) -> None:
        """One operation with every allocation failing in the impl."""
        self.no_memory = True
        try:
            if operation == "request" and len(self.indices) < MAX_INDICES:
                self.request_index(None)
            elif operation == "set" and self.codes:
                self.set_extra(code, index, "fresh", 1)
            elif operation == "new_code":
                self.new_code(1, False)
            elif (
                operation == "copy"
                and self.codes
                and (Capability.COPY in self.caps)
            ):
                self.copy_code(code, "marshal")
            elif (
                operation == "add_hook"
                and len(self.hooks) < MAX_HOOKS
                and (Capability.HOOKS in self.caps)
            ):
                self.add_hook(15, HookAction.RECORD, 0)
        finally:
            self.no_memory = False

    def teardown(self) -> None:
        """Close both sessions."""
        self.impl.close()
        self.model.close()


@pytest.mark.contract
@pytest.mark.isolated
def test_random_operations_match_the_model(
    implementation: Implementation, request: pytest.FixtureRequest
) -> None:
    """Every sequence of operations behaves as the model does.

    A divergence cannot be pinned on one requirement, so this test names
    none: the tests of each area do that.  It fails the run without
    touching the verdicts, and it is skipped for implementations that
    declare expected failures, which are known to diverge.
    """
    if request.config.getoption("coextra_expectations", None):
        pytest.skip(
            "not-applicable: the implementation declares expected "
            "failures, so it is not expected to match the model"
        )

    class Bound(Differential):
        def __init__(self) -> None:
            super().__init__(implementation)

    run_state_machine_as_test(Bound, settings=strategies.stateful_settings())
