"""Finalization at exit: code objects that outlive the interpreter.

The implementation is run to its end in a process of its own
(:mod:`..exit_run`): some code objects are never deallocated, one is
deallocated after the main interpreter was finalized.
"""

from __future__ import annotations

import pytest

from .. import exit_run
from ..adapter import Capability, Implementation
from . import helpers as h

pytestmark = pytest.mark.requires(
    Capability.EXIT_FINALIZATION, Capability.FINALIZE
)


def _phases(
    implementation: Implementation, request: pytest.FixtureRequest
) -> exit_run.Phases:
    own = getattr(implementation, "run_to_exit", None)
    if own is not None:
        phases: exit_run.Phases = own()
        return phases
    spec = request.config.getoption("coextra_impl")
    assert isinstance(spec, str), "no --coextra-impl to run in a child"
    return exit_run.run_program(spec)


def _values(n: int) -> list[tuple[int, int]]:
    return [(1, exit_run.VALUE_A + n), (2, exit_run.VALUE_B + n)]


@pytest.mark.req("R-FREE-13")
def test_values_outliving_the_interpreter_are_freed_at_finalization(
    implementation: Implementation, request: pytest.FixtureRequest
) -> None:
    """Values of code objects that outlive the interpreter.

    Runs the program of ``exit_run`` to its end: code objects kept alive
    past the main interpreter's finalization, and one destroyed after it.
    Compares the free calls of each phase (finalization, the late
    destruction, process exit) with what was stored.
    """
    phases = _phases(implementation, request)
    outliving = [*exit_run.KEPT, exit_run.LATE]
    finalize = phases.get("finalize", [])
    h.assert_frees(
        "main interpreter finalization",
        "R-FREE-13",
        finalize,
        [pair for n in outliving for pair in _values(n)],
    )
    for n in outliving:
        mine = [pair for pair in finalize if pair in _values(n)]
        assert mine == _values(n), (
            f"finalization must free code object {n}'s values in "
            f"ascending index order (R-FREE-13); got {mine}"
        )
    for phase in ("after", "exit"):
        assert phases.get(phase) == [], (
            f"free functions ran again in phase {phase!r}, after the "
            f"interpreter was finalized (R-FREE-13): {phases.get(phase)}"
        )
