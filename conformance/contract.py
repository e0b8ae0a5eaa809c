"""The contract between the suite and an implementation, in one place.

Everything here is defined once and imported by the rest of the suite:

* the constants of the PEP (:data:`CO_INLINE_EXTRA`, :data:`MIN_INDICES`,
  :data:`MIN_CONSTRUCTOR_HOOKS`) and of the tested process
  (:data:`WORD_BITS`);
* the names of the PEP's C functions, which every :class:`ApiError` and
  every failure message uses (:data:`C_NAMES`);
* the recording free functions and hooks the tests register
  (:class:`FreeFunc`, :class:`Hook`), what they do (:class:`FreeAction`,
  :class:`HookAction`), what they record (:class:`FreeCall`,
  :class:`HookCall`) and the one reading of their actions
  (:func:`run_free_action`, :func:`run_hook_action`);
* the outcomes a requirement can have in the report (:data:`OUTCOMES`).

The model (:mod:`.model`), the C-ABI loader (:mod:`.cabi`) and the test
helpers import from here; :mod:`.adapter` re-exports the classes as part
of the Python protocol.  The stock CPython worker runs inside the
interpreter under test (3.6 and later) where this package cannot be
imported: it carries a generated copy of the names it needs, written by
``tools/gen_contract_copies.py`` and checked by
``meta_tests/test_contract.py``, which also fails on a hand-written copy
of anything defined here.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import Protocol

#: Interpreter, code object and other-object handles are opaque.
Handle = object

# -- constants -------------------------------------------------------------

#: The co_flags bit that marks inline extra storage (R-FLAG-3).
CO_INLINE_EXTRA = 0x20000000

#: Minimum number of indices an interpreter offers (R-INDEX-2).
MIN_INDICES = 255

#: Minimum number of constructor hooks an interpreter accepts (R-HOOK-10).
MIN_CONSTRUCTOR_HOOKS = 8

#: Bits of a pointer-sized word (a slot's value) in the tested process.
WORD_BITS = 64 if sys.maxsize > 2**32 else 32

#: Recording free functions are told only the value, so each tag needs a
#: C function of its own; tags run from 0 to NUM_FREE_TAGS - 1.
NUM_FREE_TAGS = 16

# -- names of the PEP's C functions ------------------------------------------

REQUEST = "PyUnstable_Eval_RequestCodeExtraIndex"
RELEASE = "PyUnstable_Eval_ReleaseCodeExtraIndex"
GET = "PyUnstable_Code_GetExtra"
SET = "PyUnstable_Code_SetExtra"
COMPARE_EXCHANGE = "PyUnstable_Code_CompareExchangeExtra"
ADD_HOOK = "PyUnstable_Code_AddConstructorHook"
REMOVE_HOOK = "PyUnstable_Code_RemoveConstructorHook"
HAS_INLINE = "PyUnstable_Code_HasInlineExtra"
#: Not one C function: code objects are constructed by the compiler,
#: unmarshalling and replace() alike, and the hooks run for each.
CONSTRUCT = "code object construction"

#: The C function behind each :class:`~.adapter.Session` method of the
#: PEP's API, in PEP order.
C_NAMES: dict[str, str] = {
    "request_index": REQUEST,
    "release_index": RELEASE,
    "get_extra": GET,
    "set_extra": SET,
    "compare_exchange_extra": COMPARE_EXCHANGE,
    "add_hook": ADD_HOOK,
    "remove_hook": REMOVE_HOOK,
    "has_inline_extra": HAS_INLINE,
    "new_code": CONSTRUCT,
}

# -- report outcomes ---------------------------------------------------------

#: The outcomes of a requirement in the JSON report (the schema's
#: ``outcome``), worst first: the terminal summary lists them so.
OUTCOMES = (
    "crashed",
    "error",
    "fail",
    "xpass",
    "untested",
    "xfail",
    "not-applicable",
    "pass",
)
#: The order of the outcome counts in the report's summary.
SUMMARY_ORDER = (
    "pass",
    "fail",
    "xfail",
    "xpass",
    "not-applicable",
    "crashed",
    "error",
    "untested",
)


# -- errors ------------------------------------------------------------------


class ApiError(Exception):
    """An API function returned its error value.

    ``exc_type`` is the name of the exception class that was set, such as
    ``"SystemError"``, or ``None`` when the function failed without setting
    an exception.
    """

    def __init__(self, function: str, exc_type: str | None) -> None:
        """Record which function failed and what it raised."""
        self.function = function
        self.exc_type = exc_type
        what = exc_type if exc_type is not None else "no exception set"
        super().__init__(f"{function} failed ({what})")


# -- recording free functions and hooks --------------------------------------


class FreeAction(str, enum.Enum):
    """What a recording free function does after recording its call.

    A call with NULL is recorded and does nothing else, as a consumer's
    free function ignores NULL: an implementation that frees NULL then
    fails R-FREE-4 alone, not every test whose free functions act.
    """

    RECORD = "record"
    #: Call Get on ``FreeFunc.code``/``index``; result in FreeCall.result.
    GET = "get"
    #: Call Set on ``FreeFunc.code``/``index`` with ``FreeFunc.value``.
    SET = "set"
    #: Construct one code object in ``FreeFunc.interp`` (the session's
    #: main interpreter when None) and drop it again.
    NEW_CODE = "new-code"
    #: Record in FreeCall.result whether an exception was pending when
    #: the free function was called (1) or not (0); leave it as found.
    CHECK_ERROR = "check-error"
    #: Set an exception (RuntimeError) and return, a buggy free function.
    SET_ERROR = "set-error"


@dataclass(frozen=True)
class FreeFunc:
    """A recording free function to register with ``request_index``.

    Each distinct ``tag`` must map to a distinct C function (the free
    function is not told its index, so the tag identifies it).  Tags run
    from 0 to ``NUM_FREE_TAGS - 1``.
    """

    tag: int
    action: FreeAction = FreeAction.RECORD
    code: Handle | None = None
    index: int = 0
    value: int = 0
    interp: Handle | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FreeCall:
    """One call of a recording free function, in call order."""

    tag: int
    value: int
    #: For GET: the value read; for SET and NEW_CODE: 0 on success.
    result: int | None = None
    #: Exception class name if the action's API call failed.
    error: str | None = None


class HookAction(str, enum.Enum):
    """What a recording constructor hook does after recording its call."""

    RECORD = "record"
    #: Set an exception (RuntimeError) and return -1.
    FAIL = "fail"
    #: Return -1 without setting an exception (R-HOOK-12).
    FAIL_WITHOUT_EXCEPTION = "fail-without-exception"
    #: Store ``Hook.value`` under ``Hook.index`` on the new code object.
    SET_EXTRA = "set-extra"
    #: When not already inside this hook, construct one code object in
    #: the same interpreter and drop it.
    NEW_CODE = "new-code"
    #: Add a RECORD hook tagged ``Hook.value`` to the same interpreter,
    #: unless a hook with that tag is registered there (R-HOOK-11).
    ADD_HOOK = "add-hook"
    #: Remove the hook tagged ``Hook.value`` from the same interpreter,
    #: if one is registered there (R-HOOK-11).
    REMOVE_HOOK = "remove-hook"


@dataclass(frozen=True)
class Hook:
    """A recording constructor hook to register with ``add_hook``."""

    tag: int
    action: HookAction = HookAction.RECORD
    index: int = 0
    value: int = 0


@dataclass(frozen=True)
class HookCall:
    """One call of a recording hook: which hook saw which code object."""

    tag: int
    code_id: int


@dataclass(frozen=True)
class HookFailed:
    """A recording hook returns -1; ``exception`` is what it leaves set.

    ``None`` is the deliberate -1 without an exception
    (:attr:`HookAction.FAIL_WITHOUT_EXCEPTION`).
    """

    exception: str | None


class ActionHost(Protocol):
    """What a session offers the actions of its free functions and hooks.

    The PEP's calls are the session's own; the others reach the
    implementation below the session's bookkeeping.
    """

    @property
    def main(self) -> Handle:
        """The session's main interpreter."""

    def get_extra(self, interp: Handle, code: Handle, index: int) -> int:
        """PyUnstable_Code_GetExtra; raise ApiError on error."""

    def set_extra(
        self, interp: Handle, code: Handle, index: int, value: int
    ) -> None:
        """PyUnstable_Code_SetExtra; raise ApiError on error."""

    def add_hook(self, interp: Handle, hook: Hook) -> int:
        """PyUnstable_Code_AddConstructorHook; raise ApiError on error."""

    def remove_hook(self, interp: Handle, hook_id: int) -> None:
        """PyUnstable_Code_RemoveConstructorHook; raise ApiError on error."""

    def construct_and_drop(self, interp: Handle) -> None:
        """Construct one code object in ``interp`` and destroy it."""

    def error_pending(self) -> bool:
        """Tell whether an exception is set; leave it as found."""

    def set_error(self, exc_type: str) -> None:
        """Set an exception of class ``exc_type`` in this thread."""

    def hook_ids(self, interp: Handle, tag: int) -> list[int]:
        """Return the ids of the hooks tagged ``tag`` in ``interp``."""


def run_free_action(host: ActionHost, free: FreeFunc, value: int) -> FreeCall:
    """Do what ``free`` does when called with ``value``; return the record.

    The caller records the call before running this, so that free calls
    the action causes come after it in the log.
    """
    interp = free.interp if free.interp is not None else host.main
    result: int | None = None
    error: str | None = None
    try:
        # R-FREE-10: a free function may use the API.
        if value == 0:
            pass  # A NULL call is only recorded (see FreeAction).
        elif free.action is FreeAction.GET:
            result = host.get_extra(interp, free.code, free.index)
        elif free.action is FreeAction.SET:
            host.set_extra(interp, free.code, free.index, free.value)
            result = 0
        elif free.action is FreeAction.NEW_CODE:
            host.construct_and_drop(interp)
            result = 0
        elif free.action is FreeAction.CHECK_ERROR:
            result = 1 if host.error_pending() else 0
        elif free.action is FreeAction.SET_ERROR:
            host.set_error("RuntimeError")
    except ApiError as exc:
        error = exc.exc_type
    return FreeCall(free.tag, value, result, error)


def run_hook_action(
    host: ActionHost,
    interp: Handle,
    hook: Hook,
    code: Handle,
    *,
    running: set[object],
    key: object,
) -> HookFailed | None:
    """Do what ``hook`` does for the new ``code``; None is success.

    ``running`` is the calling thread's set of hooks inside a NEW_CODE
    action and ``key`` names this one in it: the code object a NEW_CODE
    hook constructs runs the hooks again, and the hook must not recurse.
    """
    try:
        if hook.action is HookAction.FAIL:
            return HookFailed("RuntimeError")
        if hook.action is HookAction.FAIL_WITHOUT_EXCEPTION:
            return HookFailed(None)
        if hook.action is HookAction.SET_EXTRA:
            host.set_extra(interp, code, hook.index, hook.value)
        elif hook.action is HookAction.NEW_CODE:
            if key not in running:
                running.add(key)
                try:
                    # R-HOOK-9: re-entrant construction.
                    host.construct_and_drop(interp)
                finally:
                    running.discard(key)
        elif hook.action is HookAction.ADD_HOOK:
            if not host.hook_ids(interp, hook.value):
                host.add_hook(interp, Hook(hook.value))
        elif hook.action is HookAction.REMOVE_HOOK:
            for other in host.hook_ids(interp, hook.value):
                host.remove_hook(interp, other)
    except ApiError as exc:
        return HookFailed(exc.exc_type or "SystemError")
    return None
