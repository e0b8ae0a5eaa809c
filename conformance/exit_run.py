"""Run an implementation to its end and collect what its free functions saw.

Finalization of the main interpreter happens once, at exit, so it cannot
be tested inside the suite's process (Capability.EXIT_FINALIZATION,
R-FREE-13).  :func:`run_program` runs :data:`PROGRAM`'s steps in a child
process that loads the implementation under test::

    python -m coextra_conformance.exit_run SPEC

where SPEC is what ``--coextra-impl`` was given.  The child prints one
JSON line per phase with the free calls recorded in it, in call order:

``before``
    a code object dropped while the interpreter is alive;
``finalize``
    the session's main interpreter finalized with code objects still
    alive that are never dropped (they live until exit, as immortal and
    static code objects do) and one that is dropped afterwards;
``after``
    that code object dropped after finalization;
``exit``
    whatever runs while the process exits (Python's atexit).

An adapter that runs its implementation elsewhere (a real interpreter)
provides ``run_to_exit()`` returning the same phases instead.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys

from .adapter import FreeFunc, Implementation, Session

#: The values the program stores: code object n holds VALUE_A + n under
#: the first index and VALUE_B + n under the second.
VALUE_A = 0xA00
VALUE_B = 0xB00

#: Code objects of the program by number, and what becomes of them.
#: 0: made before any index exists (its values are out of line), never
#: dropped; 1: made with a consumer active, one nested code object (2),
#: both never dropped; 3: dropped before finalization; 4: dropped after.
KEPT = (0, 1, 2)
EARLY = 3
LATE = 4

#: Phase name -> free calls as (tag, value).
Phases = dict[str, list[tuple[int, int]]]

_PREFIX = "coextra-exit-run "


def _emit(phase: str, session: Session) -> None:
    frees = [[c.tag, c.value] for c in session.take_free_calls()]
    line = _PREFIX + json.dumps({"phase": phase, "frees": frees}) + "\n"
    os.write(1, line.encode())


def program(implementation: Implementation) -> None:
    """Run the steps in this process, printing each phase's free calls."""
    session = implementation.open_session()
    main = session.main
    codes = [session.new_code(main)]
    # Stored under b first, then a: the order of the frees must follow
    # the indices, not the order of the stores.
    first = session.request_index(main, FreeFunc(1))
    second = session.request_index(main, FreeFunc(2))
    outer = session.new_code(main, nested=1)
    codes += [outer, *session.nested(outer)]
    codes += [session.new_code(main), session.new_code(main)]
    for n, code in enumerate(codes):
        session.set_extra(main, code, second, VALUE_B + n)
        session.set_extra(main, code, first, VALUE_A + n)
    _emit("start", session)
    session.drop(codes[EARLY])
    _emit("before", session)
    session.end_interpreter(main)
    _emit("finalize", session)
    session.drop(codes[LATE])
    _emit("after", session)
    # The kept code objects are never dropped and the session is never
    # closed: they live until the process ends.
    atexit.register(_emit, "exit", session)


def run_program(spec: str, timeout: float = 120.0) -> Phases:
    """Run :func:`program` against ``spec`` in a child; return its phases.

    Raises AssertionError with the child's output when it does not end
    normally (a crash after finalization is touching freed state).
    """
    env = dict(os.environ)
    env.pop("COEXTRA_IMPL", None)
    done = subprocess.run(
        [sys.executable, "-m", __spec__.name if __spec__ else __name__, spec],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    phases: Phases = {}
    for line in done.stdout.splitlines():
        if line.startswith(_PREFIX):
            record = json.loads(line.removeprefix(_PREFIX))
            phases[record["phase"]] = [
                (int(tag), int(value)) for tag, value in record["frees"]
            ]
    if done.returncode != 0 or "exit" not in phases:
        raise AssertionError(
            f"the program run to its end did not exit normally (status "
            f"{done.returncode}, phases seen: {sorted(phases)}):\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )
    return phases


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    from . import loading

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m coextra_conformance.exit_run SPEC "
            "(SPEC as given to --coextra-impl)",
            file=sys.stderr,
        )
        return 2
    try:
        implementation = loading.resolve(args[0])
    except loading.LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    program(implementation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
