"""The smoke layer: the implementation declares itself and its methods.

These tests check the adapter contract, not the PEP, so they are marked
``contract`` instead of ``req``; when they fail, nothing else can be
trusted.
"""

from __future__ import annotations

import pytest

from ..adapter import Capability, Implementation, Session

pytestmark = pytest.mark.contract

#: Session methods every implementation provides.
BASE_METHODS = (
    "new_code",
    "nested",
    "new_non_code",
    "drop",
    "code_id",
    "request_index",
    "get_extra",
    "get_extra_on_error",
    "set_extra",
    "co_flags",
    "take_free_calls",
    "take_hook_calls",
    "take_unraisable",
    "pending_error",
    "close",
)

#: Session methods each capability promises.
CAPABILITY_METHODS: dict[Capability, tuple[str, ...]] = {
    Capability.RELEASE: ("release_index",),
    Capability.INLINE_FLAG: ("has_inline_extra",),
    Capability.STORAGE_SIZE: ("extra_bytes",),
    Capability.SIZEOF: ("sizeof",),
    Capability.HOOKS: ("add_hook", "remove_hook"),
    Capability.INTERPRETERS: ("new_interpreter",),
    Capability.FINALIZE: ("end_interpreter",),
    Capability.THREADS: (),
    Capability.ALLOC_FAILURE: ("fail_allocations",),
    Capability.COPY: ("copy_code",),
    Capability.COMPARE_EXCHANGE: ("compare_exchange_extra",),
    Capability.PENDING_ERROR: ("drop_with_error",),
    Capability.PYTHON_CODE: ("python_view", "python_equal"),
    # The implementation, not the session, has live_blocks().
    Capability.LIVE_BLOCKS: (),
    # Run by the suite in a child process (exit_run.py).
    Capability.EXIT_FINALIZATION: (),
    Capability.OWN_GIL: ("new_own_gil_interpreter",),
    Capability.NATIVE_THREADS: ("hammer_extra",),
}


def test_implementation_is_an_implementation(
    implementation: Implementation,
) -> None:
    """The object found by --coextra-impl follows the protocol."""
    assert isinstance(implementation, Implementation), (
        f"{implementation!r} lacks Implementation members"
    )


def test_implementation_declares_name_and_version(
    implementation: Implementation,
) -> None:
    """``name`` and ``version`` are non-empty strings."""
    for attribute in ("name", "version"):
        value = getattr(implementation, attribute)
        assert isinstance(value, str), f"{attribute} must be a str"
        assert value, f"{attribute} must not be empty"
    assert isinstance(implementation.in_process, bool), (
        "in_process must be a bool"
    )


def test_capabilities_are_capability_members(
    implementation: Implementation,
) -> None:
    """``capabilities`` is a frozenset of :class:`Capability` members."""
    capabilities = implementation.capabilities
    assert isinstance(capabilities, frozenset), "capabilities: frozenset"
    for capability in capabilities:
        assert isinstance(capability, Capability), (
            f"{capability!r} is not a Capability"
        )


def test_session_is_a_session(session: Session) -> None:
    """``open_session`` returns a session with a main interpreter.

    Methods that a capability gates are optional (an adapter written
    before the capability existed lacks them), so the session is checked
    method by method here and in the tests below, not with
    ``isinstance(session, Session)``.
    """
    missing = [
        m for m in BASE_METHODS if not callable(getattr(session, m, None))
    ]
    assert not missing, f"open_session() must give a Session; lacks {missing}"
    assert session.main is not None, "Session.main must be a handle"


@pytest.mark.parametrize("method", BASE_METHODS)
def test_session_has_base_method(session: Session, method: str) -> None:
    """Every session offers the operations no capability gates."""
    assert callable(getattr(session, method, None)), f"{method} missing"


@pytest.mark.parametrize("capability", list(Capability))
def test_declared_capability_has_its_methods(
    implementation: Implementation, session: Session, capability: Capability
) -> None:
    """A declared capability comes with the methods it promises."""
    if capability not in implementation.capabilities:
        return  # Nothing promised, nothing to check.
    for method in CAPABILITY_METHODS[capability]:
        assert callable(getattr(session, method, None)), (
            f"capability {capability.value} declared but {method} missing"
        )


def test_live_blocks_capability_has_its_method(
    implementation: Implementation,
) -> None:
    """Capability live-blocks comes with ``live_blocks() -> int >= 0``."""
    if Capability.LIVE_BLOCKS not in implementation.capabilities:
        return  # Nothing promised, nothing to check.
    method = getattr(implementation, "live_blocks", None)
    assert callable(method), (
        "capability live-blocks declared but no live_blocks()"
    )
    count = method()
    assert isinstance(count, int), f"live_blocks() returned {count!r}"
    assert count >= 0, f"live_blocks() returned {count}, less than 0"
