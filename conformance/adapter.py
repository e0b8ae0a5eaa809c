"""The adapter contract: how an implementation plugs into the suite.

An implementation is reached through two objects:

* an :class:`Implementation`, which names the implementation, declares its
  capabilities and opens sessions;
* a :class:`Session`, one per test, which owns a fresh interpreter (the
  session's *main* interpreter) and offers one method per operation of the
  PEP, plus what the tests need to drive and observe the implementation.

Every handle a session returns (interpreters, code objects, other objects)
is opaque to the suite: it is only ever passed back to the same session.
Values stored in slots are plain ``int`` words; ``0`` is ``NULL``.

Calls of the PEP's API that return their error value raise :class:`ApiError`
carrying the name of the exception class the implementation set (or ``None``
when it set none, itself a deviation).  A crash of the implementation is
raised as :class:`ImplementationCrashed` by adapters that run it out of
process, and a hang (a request that gets no answer in time) as its
subclass :class:`ImplementationTimedOut`; in-process adapters are isolated
by the suite with ``fork``.

The same contract is offered to C and Rust libraries as the C ABI declared
in ``abi/coextra_abi.h`` and loaded by :mod:`.cabi`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# The values exchanged with an implementation are defined in .contract
# and are part of this protocol too: they are imported from here.
from .contract import CO_INLINE_EXTRA as CO_INLINE_EXTRA
from .contract import MIN_CONSTRUCTOR_HOOKS as MIN_CONSTRUCTOR_HOOKS
from .contract import MIN_INDICES as MIN_INDICES
from .contract import ApiError as ApiError
from .contract import FreeAction as FreeAction
from .contract import FreeCall as FreeCall
from .contract import FreeFunc as FreeFunc
from .contract import Handle as Handle
from .contract import Hook as Hook
from .contract import HookAction as HookAction
from .contract import HookCall as HookCall


class Capability(str, enum.Enum):
    """Optional features; a test needing an undeclared one is N/A."""

    #: ``release_index`` exists (PyUnstable_Eval_ReleaseCodeExtraIndex).
    RELEASE = "release"
    #: ``has_inline_extra`` exists: the CO_INLINE_EXTRA flag is implemented.
    INLINE_FLAG = "inline-flag"
    #: ``extra_bytes`` can measure a code object's extra-storage bytes.
    STORAGE_SIZE = "storage-size"
    #: ``sizeof`` returns what ``sys.getsizeof`` would.
    SIZEOF = "sizeof"
    #: ``add_hook``/``remove_hook`` exist (the constructor-hook chain).
    HOOKS = "hooks"
    #: Several interpreters can be live at once and share code objects.
    INTERPRETERS = "interpreters"
    #: ``end_interpreter`` finalizes an interpreter and frees its values.
    FINALIZE = "finalize"
    #: The session may be called from several threads at once.
    THREADS = "threads"
    #: ``fail_allocations`` injects allocation failures.
    ALLOC_FAILURE = "alloc-failure"
    #: ``copy_code`` copies code objects (replace(), unmarshal).
    COPY = "copy"
    #: ``compare_exchange_extra`` exists
    #: (PyUnstable_Code_CompareExchangeExtra, Spec-Version 2.0).
    COMPARE_EXCHANGE = "compare-exchange"
    #: ``drop_with_error`` leaves an exception pending around a
    #: destruction, and recording free functions can observe and leave
    #: one (FreeAction.CHECK_ERROR, FreeAction.SET_ERROR).
    PENDING_ERROR = "pending-error"
    #: ``python_view`` and ``python_equal`` show code objects as Python
    #: code sees them (co_flags, ==, hash(), marshal.dumps()).
    PYTHON_CODE = "python-code"
    #: The implementation object has the optional method
    #: ``live_blocks() -> int`` (see :func:`live_blocks`): the suite
    #: counts the heap blocks it holds before and after every test.
    LIVE_BLOCKS = "live-blocks"
    #: The implementation can be run to its end in a process of its own:
    #: the suite runs the program of :mod:`.exit_run` (code objects that
    #: are never deallocated, the main interpreter finalized as at exit)
    #: and collects what the free functions saw (R-FREE-13).  In-process
    #: implementations get this from the suite (a child process loads the
    #: same ``--coextra-impl``); others provide ``run_to_exit()`` with
    #: the result of :func:`.exit_run.run_program`.
    EXIT_FINALIZATION = "exit-finalization"
    #: The session is an :class:`OwnGilSession`: it can create interpreters
    #: with their own GIL (PEP 684), besides those of ``new_interpreter``.
    OWN_GIL = "own-gil"
    #: The session is a :class:`NativeThreadsSession`: it can run a Set/Get
    #: loop on several native threads inside the implementation, so that
    #: on a free-threaded build calls really run in parallel.
    NATIVE_THREADS = "native-threads"


def live_blocks(implementation: object) -> int:
    """Return how many heap blocks ``implementation`` holds right now.

    This is the optional method ``live_blocks()`` of an
    :class:`Implementation` that declares :attr:`Capability.LIVE_BLOCKS`:
    the blocks it has allocated and not freed, over every session,
    interpreter and object.  The suite reads it before a test opens its
    session and after the session is closed; a difference is memory the
    test's operations leaked.  It is not part of the :class:`Implementation`
    protocol, so that adapters written before it still qualify.
    """
    method = getattr(implementation, "live_blocks", None)
    if method is None:
        raise NotImplementedError(
            f"{getattr(implementation, 'name', implementation)!r} declares "
            f"capability 'live-blocks' but has no live_blocks() method"
        )
    count = method()
    if not isinstance(count, int) or count < 0:
        raise TypeError(f"live_blocks() returned {count!r}, not an int >= 0")
    return count


class ImplementationCrashed(Exception):
    """The implementation under test died (signal, abort, lost worker)."""


class ImplementationTimedOut(ImplementationCrashed):
    """The implementation under test stopped answering and was killed.

    Raised by out-of-process adapters when one request gets no answer
    within their time limit; the suite reports the test as ``timeout``.
    A subclass of :class:`ImplementationCrashed`, so code that handles a
    crash handles a hang the same way.
    """

    def __init__(self, message: str, seconds: float) -> None:
        """Say what hung; ``seconds`` is the limit it exceeded."""
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class PythonView:
    """What Python code sees of a code object (Capability.PYTHON_CODE)."""

    co_flags: int
    hash: int
    marshal: bytes


@runtime_checkable
class Session(Protocol):
    """One test's view of an implementation; see the module docstring."""

    @property
    def main(self) -> Handle:
        """The session's main interpreter, fresh for this session."""

    # -- object model -------------------------------------------------

    def new_interpreter(self) -> Handle:
        """Create another interpreter (Capability.INTERPRETERS)."""

    def end_interpreter(self, interp: Handle) -> None:
        """Finalize an interpreter (Capability.FINALIZE)."""

    def new_code(
        self, interp: Handle, *, nested: int = 0, flags: int = 0
    ) -> Handle:
        """Construct a code object in ``interp``.

        ``nested`` code objects are constructed as its constants (inner
        first, as a compiler does); ``flags`` are caller-supplied co_flags
        bits.
        """

    def nested(self, code: Handle) -> list[Handle]:
        """Return handles to the nested code objects of ``code``."""

    def copy_code(self, interp: Handle, code: Handle, how: str) -> Handle:
        """Copy ``code`` in ``interp``; ``how`` is "replace" or "marshal"."""

    def new_non_code(self, interp: Handle) -> Handle:
        """Return an object that is not a code object."""

    def drop(self, obj: Handle) -> None:
        """Release the session's reference; destroys an unreferenced object.

        After ``drop`` returns the object is destroyed if nothing else
        refers to it (adapters collect cycles as needed).
        """

    def code_id(self, code: Handle) -> int:
        """Return the identity hooks record for ``code``."""

    # -- the API of the PEP ---------------------------------------------

    def request_index(self, interp: Handle, free: FreeFunc | None) -> int:
        """PyUnstable_Eval_RequestCodeExtraIndex."""

    def release_index(self, interp: Handle, index: int) -> None:
        """PyUnstable_Eval_ReleaseCodeExtraIndex (Capability.RELEASE)."""

    def get_extra(self, interp: Handle, code: Handle, index: int) -> int:
        """PyUnstable_Code_GetExtra; returns the value read."""

    def get_extra_on_error(
        self, interp: Handle, code: Handle, index: int
    ) -> tuple[str | None, int]:
        """Call Get expecting failure; return (exception, *extra after).

        The output word is primed with a non-NULL sentinel before the call
        so that R-STORE-10 can see whether it was cleared.  Raises
        ``AssertionError`` if the call unexpectedly succeeds.
        """

    def set_extra(
        self, interp: Handle, code: Handle, index: int, value: int
    ) -> None:
        """PyUnstable_Code_SetExtra."""

    def compare_exchange_extra(
        self,
        interp: Handle,
        code: Handle,
        index: int,
        expected: int,
        desired: int,
    ) -> tuple[bool, int]:
        """PyUnstable_Code_CompareExchangeExtra (COMPARE_EXCHANGE).

        Return (whether ``desired`` was stored, ``*expected`` after the
        call): ``(True, expected)`` or ``(False, current value)``.
        """

    def add_hook(self, interp: Handle, hook: Hook) -> int:
        """PyUnstable_Code_AddConstructorHook (Capability.HOOKS)."""

    def remove_hook(self, interp: Handle, hook_id: int) -> None:
        """PyUnstable_Code_RemoveConstructorHook (Capability.HOOKS)."""

    def has_inline_extra(self, code: Handle) -> bool:
        """PyUnstable_Code_HasInlineExtra (Capability.INLINE_FLAG)."""

    # -- observation ------------------------------------------------------

    def co_flags(self, code: Handle) -> int:
        """Return the co_flags field as C code sees it.

        Unlike Python's ``code.co_flags`` (R-FLAG-10), this includes
        CO_INLINE_EXTRA on code objects that have inline storage.
        """

    def extra_bytes(self, code: Handle) -> int:
        """Return the bytes the code object spends on extra storage.

        Any always-present pointer field counts too
        (Capability.STORAGE_SIZE).
        """

    def sizeof(self, code: Handle) -> int:
        """Return what sys.getsizeof() reports (Capability.SIZEOF)."""

    def drop_with_error(self, obj: Handle, exc_type: str) -> str | None:
        """Drop ``obj`` with ``exc_type`` pending (PENDING_ERROR).

        Sets an exception of class ``exc_type`` in the calling thread,
        releases the session's reference, then returns (and clears) the
        exception pending afterwards, or None.
        """

    def python_view(self, code: Handle) -> PythonView:
        """Return what Python code sees of ``code`` (PYTHON_CODE)."""

    def python_equal(self, a: Handle, b: Handle) -> bool:
        """Return ``a == b`` as Python code computes it (PYTHON_CODE)."""

    def fail_allocations(self, after: int, count: int = 1) -> None:
        """Make allocations fail (Capability.ALLOC_FAILURE).

        The next ``after`` allocations succeed, then ``count`` fail, then
        allocation works again.
        """

    def take_free_calls(self) -> list[FreeCall]:
        """Return and forget the free calls recorded so far, in order."""

    def take_hook_calls(self) -> list[HookCall]:
        """Return and forget the hook calls recorded so far, in order."""

    def take_unraisable(self) -> list[str]:
        """Return and forget exception class names reported unraisable."""

    def pending_error(self) -> str | None:
        """Return (and clear) an exception left set, if any."""

    def close(self) -> None:
        """Drop every handle and finalize the session's interpreters."""


class OwnGilSession(Session, Protocol):
    """A session of an implementation declaring ``Capability.OWN_GIL``."""

    def new_own_gil_interpreter(self) -> Handle:
        """Create an interpreter with its own GIL (PEP 684).

        Same contract as ``new_interpreter``; on CPython 3.12+ this is
        ``Py_NewInterpreterFromConfig`` with ``PyInterpreterConfig_OWN_GIL``.
        """


def hammer_value(thread: int, code: int, round_: int) -> int:
    """Return the value ``hammer_extra`` stores in thread ``thread``.

    ``code`` is the position of the code object in the list given to
    ``hammer_extra`` and ``round_`` the round; the value is odd and unique,
    so every read and every free call traces back to one Set.
    """
    return (thread + 1) << 40 | code << 20 | round_ << 1 | 1


@dataclass(frozen=True)
class HammerThread:
    """What one native thread of ``hammer_extra`` saw."""

    set_errors: int
    get_errors: int
    #: Reads that no Set of this run could explain (see hammer_extra).
    wrong_reads: int
    #: The first wrong read and what was expected, if any.
    first_wrong: tuple[int, int] | None


@dataclass(frozen=True)
class HammerReport:
    """The result of ``hammer_extra``."""

    threads: tuple[HammerThread, ...]
    #: Data-race reports of a sanitizer (ThreadSanitizer) the run produced,
    #: one string per report; empty when none ran or none fired.
    sanitizer_reports: tuple[str, ...]


class NativeThreadsSession(Session, Protocol):
    """A session of an implementation declaring ``NATIVE_THREADS``."""

    def hammer_extra(
        self,
        codes: list[Handle],
        index: int,
        *,
        threads: int,
        rounds: int,
        shared: bool,
    ) -> HammerReport:
        """Run Set/Get loops on ``threads`` native threads at once.

        Thread ``t`` does, for each code object ``codes[k]`` it visits and
        ``r`` in ``range(rounds)``: SetExtra(codes[k], index,
        hammer_value(t, k, r)), then GetExtra(codes[k], index).  With
        ``shared`` every thread visits every code object (in order), so
        the threads race on each; a read is wrong unless it is a value
        some thread stores on that code object.  Without ``shared``
        thread ``t`` visits ``codes[t::threads]`` alone; a read is wrong
        unless it is the value the thread just stored.  The threads start
        together and run in the main interpreter.
        """


@runtime_checkable
class Implementation(Protocol):
    """The object a ``--coextra-impl`` name resolves to."""

    name: str
    version: str
    capabilities: frozenset[Capability]
    #: True when the implementation runs inside the pytest process, so
    #: the suite isolates crash-prone tests with fork; False when the
    #: adapter runs it elsewhere and raises ImplementationCrashed itself.
    in_process: bool

    def open_session(self) -> Session:
        """Return a session with a fresh main interpreter."""
