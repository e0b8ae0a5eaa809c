"""An executable model of PEP 9999, in pure Python.

The model is the readable reading of the specification: every rule of the
PEP that the suite checks is a line here, with its requirement ID in a
comment.  It is also the oracle of the differential test
(``tests/test_differential.py``), and the base of the deliberately broken
implementations in :mod:`.broken`.

Object model
    Interpreters, code objects and other objects are Python objects.
    Objects are reference counted: every handle the session returns is a
    new reference, :meth:`ModelSession.drop` releases one, and a code
    object holds references to its nested code objects (its constants).
    A code object's identity (:meth:`ModelSession.code_id`) is its
    *address*; freed addresses are reused last-in first-out, as ``malloc``
    tends to, so that stale storage would show.

Storage
    A code object constructed while a consumer is active gets inline
    storage: one slot for every index up to the highest allocated one in
    its interpreter.  Every other (interpreter, code object, index) slot is
    out-of-line, in a per-interpreter table keyed by the code object's
    address and created on the first non-NULL store.

Accounting (``extra_bytes``)
    8 bytes per inline slot plus an 8-byte inline header (the slot count),
    and for every out-of-line table 16 bytes of header (key and count)
    plus 8 bytes per slot.  A code object without extra storage spends 0.
    ``sizeof`` is :data:`BASE_SIZE` plus ``extra_bytes``.

Allocation failure
    One counter, set by ``fail_allocations``, is consulted at exactly the
    points the PEP says may allocate: an index request, a Set that needs a
    new out-of-line slot, the construction of a code object that gets
    inline storage, and a hook registration.

Live blocks
    :meth:`ModelImplementation.live_blocks` counts what a C
    implementation would hold on the heap: each live interpreter, code
    object, out-of-line table and registered hook.  Closing a session
    drops the references it handed out and ends its interpreters, which
    brings its count back to 0.

Threads
    One lock guards the state.  Free functions and hooks always run with
    the lock released, so that they may call back into the API.

Pending exceptions
    Errors are raised as :class:`.ApiError`, but the model also keeps a
    per-thread pending exception, as the C API does, for what happens
    around free functions (R-FREE-12): :meth:`ModelSession.drop_with_error`
    sets one, free functions run with it put aside, and one they leave is
    reported as unraisable.

Python view
    ``python_view`` is what Python code sees of a code object: its flags
    without CO_INLINE_EXTRA (R-FLAG-10), and a hash and marshal bytes
    computed from the visible flags and the nested code objects only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import __version__
from .adapter import (
    Capability,
    Handle,
    PythonView,
    Session,
)
from .contract import (
    ADD_HOOK,
    CO_INLINE_EXTRA,
    COMPARE_EXCHANGE,
    CONSTRUCT,
    GET,
    HAS_INLINE,
    RELEASE,
    REMOVE_HOOK,
    REQUEST,
    SET,
    WORD_BITS,
    ApiError,
    FreeCall,
    FreeFunc,
    Hook,
    HookCall,
    run_free_action,
    run_hook_action,
)

#: Indices one interpreter offers: exactly the minimum (R-INDEX-2).
INDEX_CAPACITY = 255
#: Hooks one interpreter accepts (at least 8, R-HOOK-10).
HOOK_CAPACITY = 64
#: Bytes of one slot (a pointer).
WORD = WORD_BITS // 8
#: Bytes of the inline storage header.
INLINE_HEADER = 8
#: Bytes of the header of one out-of-line table.
OUT_OF_LINE_HEADER = 16
#: ``sizeof`` of a code object without extra storage.
BASE_SIZE = 160

#: A value leaving a slot, with the free function it goes to.
Freeing = tuple[FreeFunc | None, int]


class _Interp:
    """An interpreter state: indices, hooks and out-of-line tables."""

    def __init__(self, serial: int) -> None:
        self.serial = serial
        self.alive = True
        self.indices: dict[int, FreeFunc | None] = {}
        self.hooks: list[tuple[int, Hook]] = []
        self.next_hook_id = 0
        #: code address -> {index: value}; out-of-line storage.
        self.out_of_line: dict[int, dict[int, int]] = {}


class _Object:
    """Any object: reference counted."""

    def __init__(self) -> None:
        self.refs = 1


@dataclass(eq=False)
class _Code(_Object):
    """A code object: flags, optional inline storage, nested code."""

    serial: int
    address: int
    interp: _Interp
    flags: int
    #: Inline slots, for indices of ``interp``; None without the flag.
    inline: list[int] | None
    consts: list[_Code] = field(default_factory=list)

    def __post_init__(self) -> None:
        _Object.__init__(self)


class ModelSession:
    """One session of the model; implements :class:`.adapter.Session`."""

    index_capacity = INDEX_CAPACITY
    hook_capacity = HOOK_CAPACITY
    #: Whether a destroyed code object's address is given out again.
    reuse_addresses = True

    def __init__(self) -> None:
        """Start with a fresh main interpreter."""
        self._lock = threading.Lock()
        self._local = threading.local()
        self._interps: list[_Interp] = []
        #: Live code objects by serial, in construction order.
        self._codes: dict[int, _Code] = {}
        self._serial = 0
        self._next_address = 0x1000
        self._free_addresses: list[int] = []
        self._free_calls: list[FreeCall | None] = []
        self._hook_calls: list[HookCall] = []
        self._unraisable: list[str] = []
        self._alloc_after = 0
        self._alloc_fail = 0
        #: References handed to the caller: id -> (object, count).
        self._handed: dict[int, tuple[_Object, int]] = {}
        self._closed = False
        self._main = self.new_interpreter()

    # -- helpers (called with the lock held unless said otherwise) ------

    @staticmethod
    def _as_interp(handle: Handle) -> _Interp:
        assert isinstance(handle, _Interp), "not an interpreter handle"
        return handle

    def _allocate(self) -> bool:
        """Consult the allocation-failure counter."""
        if self._alloc_after > 0:
            self._alloc_after -= 1
            return True
        if self._alloc_fail > 0:
            self._alloc_fail -= 1
            return False
        return True

    def _find_free_index(self, interp: _Interp) -> int | None:
        # The lowest index not allocated: distinct (R-INDEX-1) and dense
        # (R-INDEX-6).
        for index in range(self.index_capacity):
            if index not in interp.indices:
                return index
        return None

    def _check(
        self, function: str, interp: _Interp, code: Handle, index: int
    ) -> tuple[_Code, FreeFunc | None]:
        # A non-code object (R-STORE-8, R-STORE-9) or an index that is
        # not allocated (R-STORE-6, R-STORE-7, R-INDEX-10) is misuse.
        if not isinstance(code, _Code):
            raise ApiError(function, "SystemError")
        if index not in interp.indices:
            raise ApiError(function, "SystemError")
        return code, interp.indices[index]

    def _owner(self, interp: _Interp) -> _Interp:
        """Return the interpreter whose storage ``interp`` uses."""
        return interp  # R-INTERP-2: values are per interpreter.

    @staticmethod
    def _inline_covers(owner: _Interp, code: _Code, index: int) -> bool:
        return (
            code.interp is owner
            and code.inline is not None
            and index < len(code.inline)
        )

    def _read(self, interp: _Interp, code: _Code, index: int) -> int:
        owner = self._owner(interp)
        if self._inline_covers(owner, code, index):
            assert code.inline is not None
            return code.inline[index]
        # R-STORE-1: a slot never written reads NULL.
        return owner.out_of_line.get(code.address, {}).get(index, 0)

    def _write(
        self, interp: _Interp, code: _Code, index: int, value: int
    ) -> None:
        owner = self._owner(interp)
        if self._inline_covers(owner, code, index):
            assert code.inline is not None
            code.inline[index] = value  # R-FLAG-6: no allocation.
            return
        # R-FLAG-4, R-INTERP-4: out-of-line storage; the flag stays
        # (R-FLAG-5).
        table = owner.out_of_line.get(code.address)
        if table is None or index not in table:
            if value == 0:
                return  # Clearing an absent slot needs no storage.
            if not self._allocate():
                # R-ALLOC-1, R-ALLOC-2: nothing changed.
                raise ApiError(SET, "MemoryError")
            table = owner.out_of_line.setdefault(code.address, {})
        table[index] = value

    def _slots(self, interp: _Interp, code: _Code) -> dict[int, int]:
        """Every slot ``interp`` has on ``code``, NULL ones included."""
        owner = self._owner(interp)
        slots: dict[int, int] = {}
        if code.interp is owner and code.inline is not None:
            slots.update(enumerate(code.inline))
        slots.update(owner.out_of_line.get(code.address, {}))
        return slots

    def _take_values(self, interp: _Interp, code: _Code) -> list[Freeing]:
        """Empty ``interp``'s slots on ``code``; return what left them."""
        slots = self._slots(interp, code)
        owner = self._owner(interp)
        if code.interp is owner and code.inline is not None:
            code.inline[:] = [0] * len(code.inline)
        self._forget_out_of_line(owner, code)
        # R-FREE-7: ascending index order.
        return [(interp.indices.get(i), v) for i, v in sorted(slots.items())]

    def _forget_out_of_line(self, owner: _Interp, code: _Code) -> None:
        owner.out_of_line.pop(code.address, None)

    def _destruction_order(self, frees: list[Freeing]) -> list[Freeing]:
        return frees

    def _strip_flags(self, flags: int) -> int:
        return flags & ~CO_INLINE_EXTRA  # R-FLAG-7

    def _new_address(self) -> int:
        if self._free_addresses:
            return self._free_addresses.pop()
        self._next_address += 0x100
        return self._next_address

    def _hand_out(self, obj: _Object) -> _Object:
        """Record one reference given to the caller; return ``obj``."""
        with self._lock:
            _, count = self._handed.get(id(obj), (obj, 0))
            self._handed[id(obj)] = (obj, count + 1)
        return obj

    def live_blocks(self) -> int:
        """Heap blocks a C implementation would hold for this session."""
        with self._lock:
            blocks = len(self._codes)
            for interp in self._interps:
                blocks += len(interp.out_of_line)
                if interp.alive:
                    blocks += 1 + len(interp.hooks)
            return blocks

    def _running(self) -> set[object]:
        """Hooks running in this thread, as (interpreter, hook id)."""
        running: set[object] | None = getattr(self._local, "running", None)
        if running is None:
            running = self._local.running = set()
        return running

    def _pending(self) -> str | None:
        pending: str | None = getattr(self._local, "pending", None)
        return pending

    def _set_pending(self, exc_type: str | None) -> None:
        self._local.pending = exc_type

    # -- calling out (lock released) ------------------------------------

    def _run_frees(self, frees: Iterable[Freeing]) -> None:
        # R-FREE-12: free functions run with no exception set; the
        # caller's comes back afterwards, one a free function leaves is
        # unraisable.
        saved = self._pending()
        self._set_pending(None)
        try:
            for free, value in frees:
                # R-INDEX-5: no free function; R-FREE-4: never NULL.
                if free is not None and value != 0:
                    self._call_free(free, value)
                    if not self._after_free_call():
                        break
        finally:
            self._set_pending(saved)

    def _after_free_call(self) -> bool:
        """Report what a free function left; say whether the batch goes on.

        R-FREE-12: an exception left by one free function is unraisable
        and the values after it are freed all the same.
        """
        self._free_left_error()
        return True

    def _free_left_error(self) -> None:
        left = self._pending()
        if left is not None:
            self._set_pending(None)
            with self._lock:
                self._unraisable.append(left)

    def _call_free(self, free: FreeFunc, value: int) -> None:
        # Reserve the log position first: the action may cause nested
        # free calls, which must appear after this one.
        with self._lock:
            position = len(self._free_calls)
            self._free_calls.append(None)
        call = run_free_action(self, free, value)
        with self._lock:
            self._free_calls[position] = call

    def _run_hooks(self, interp: _Interp, code: _Code) -> None:
        # R-HOOK-4: registration order; R-HOOK-11: the chain is the one
        # registered when this construction started.
        with self._lock:
            chain = list(interp.hooks)
        for hook_id, hook in chain:
            with self._lock:
                self._hook_calls.append(HookCall(hook.tag, code.address))
            error = self._hook_action(interp, hook_id, hook, code)
            if error is not None:
                self._hook_failed(interp, code, error)

    def _hook_failed(self, interp: _Interp, code: _Code, error: str) -> None:
        # R-HOOK-8: reported as unraisable; construction goes on.
        with self._lock:
            self._unraisable.append(error)

    def _hook_error_without_exception(self) -> str | None:
        return "SystemError"

    def _hook_action(
        self, interp: _Interp, hook_id: int, hook: Hook, code: _Code
    ) -> str | None:
        """Run what the hook does; return an exception name on error."""
        failed = run_hook_action(
            self,
            interp,
            hook,
            code,
            running=self._running(),
            key=(interp.serial, hook_id),
        )
        if failed is None:
            return None
        if failed.exception is None:
            # R-HOOK-12: -1 with nothing set is a SystemError.
            return self._hook_error_without_exception()
        return failed.exception

    # -- what the actions of free functions and hooks use ---------------

    def construct_and_drop(self, interp: Handle) -> None:
        """Construct one code object in ``interp`` and destroy it."""
        self.drop(self.new_code(interp))

    def error_pending(self) -> bool:
        """Tell whether this thread has an exception pending."""
        return self._pending() is not None

    def set_error(self, exc_type: str) -> None:
        """Leave ``exc_type`` pending in this thread."""
        self._set_pending(exc_type)

    def hook_ids(self, interp: Handle, tag: int) -> list[int]:
        """Return the ids of the hooks tagged ``tag`` in ``interp``."""
        state = self._as_interp(interp)
        with self._lock:
            return [i for i, h in state.hooks if h.tag == tag]

    # -- object model -----------------------------------------------------

    @property
    def main(self) -> Handle:
        """The session's main interpreter."""
        return self._main

    def new_interpreter(self) -> Handle:
        """Create another interpreter."""
        with self._lock:
            interp = _Interp(len(self._interps))
            self._interps.append(interp)
        return interp

    def new_own_gil_interpreter(self) -> Handle:
        """Create another interpreter; each model interpreter is its own."""
        return self.new_interpreter()

    def end_interpreter(self, interp: Handle) -> None:
        """Finalize an interpreter: free its values, forget its state."""
        state = self._as_interp(interp)
        with self._lock:
            if not state.alive:
                return
            # R-FREE-11, R-INTERP-5: free this interpreter's values in
            # every live code object; other interpreters keep theirs.
            frees: list[Freeing] = []
            for code in self._codes.values():
                frees += self._finalization_frees(state, code)
            state.alive = False
            state.out_of_line.clear()
            state.hooks.clear()
        self._run_frees(frees)
        with self._lock:
            state.indices.clear()

    def _finalization_frees(
        self, state: _Interp, code: _Code
    ) -> list[Freeing]:
        """Empty ``state``'s slots on ``code`` as ``state`` ends."""
        return self._take_values(state, code)

    def _construct(
        self, interp: _Interp, flags: int, consts: list[_Code], hooks: bool
    ) -> _Code:
        """Construct one code object owning ``consts``; run the hooks."""
        with self._lock:
            inline: list[int] | None = None
            if interp.indices:
                # R-FLAG-2: a consumer is active, so the object gets
                # inline storage for every allocated index (R-COPY-2).
                if not self._allocate():
                    raise ApiError(CONSTRUCT, "MemoryError")  # R-ALLOC-4
                inline = [0] * (max(interp.indices) + 1)
            # R-FLAG-1, R-FLAG-8: no consumer, no bytes; R-FLAG-3: the
            # flag tells exactly whether there is inline storage.
            flags = self._strip_flags(flags)
            if inline is not None:
                flags |= CO_INLINE_EXTRA
            self._serial += 1
            code = _Code(
                self._serial,
                self._new_address(),
                interp,
                flags,
                inline,
                consts,
            )
            self._codes[code.serial] = code
        if hooks:
            # R-HOOK-1, R-HOOK-5: the object is complete.
            self._run_hooks(interp, code)
        return code

    def _construct_all(
        self, interp: _Interp, flags: int, make_consts: list[Handle | None]
    ) -> _Code:
        """Construct nested objects (inner first, R-HOOK-2), then one."""
        consts: list[_Code] = []
        try:
            for original in make_consts:
                if original is None:
                    consts.append(self._construct_nested(interp))
                else:
                    copied = self._copy(interp, original, "marshal")
                    assert isinstance(copied, _Code)
                    consts.append(copied)
            return self._construct(interp, flags, consts, True)
        except ApiError:
            self._unwind(consts)
            raise

    def _unwind(self, consts: list[_Code]) -> None:
        """Release the constants of a construction that failed."""
        for const in consts:
            self._release(const)

    def _construct_nested(self, interp: _Interp) -> _Code:
        return self._construct(interp, 0, [], True)  # R-HOOK-2

    def new_code(
        self, interp: Handle, *, nested: int = 0, flags: int = 0
    ) -> Handle:
        """Construct a code object with ``nested`` code constants."""
        return self._hand_out(
            self._construct_all(
                self._as_interp(interp), flags, [None] * nested
            )
        )

    def nested(self, code: Handle) -> list[Handle]:
        """Return new references to the nested code objects."""
        assert isinstance(code, _Code)
        with self._lock:
            for const in code.consts:
                const.refs += 1
            consts = list(code.consts)
        return [self._hand_out(const) for const in consts]

    def copy_code(self, interp: Handle, code: Handle, how: str) -> Handle:
        """Copy a code object, as replace() or marshal does."""
        return self._hand_out(self._copy(interp, code, how))

    def _copy(self, interp: Handle, code: Handle, how: str) -> _Code:
        state = self._as_interp(interp)
        assert isinstance(code, _Code)
        # R-COPY-1: a copy is a new construction and starts empty;
        # R-HOOK-3: it goes through the hooks.
        if how == "replace":
            # replace() shares the constants.
            with self._lock:
                for const in code.consts:
                    const.refs += 1
            try:
                return self._construct(
                    state, code.flags, list(code.consts), True
                )
            except ApiError:
                for const in code.consts:
                    self._release(const)
                raise
        if how == "marshal":
            # Unmarshalling constructs the constants again.
            return self._construct_all(state, code.flags, list(code.consts))
        raise ValueError(f"unknown copy kind {how!r}")

    def new_non_code(self, interp: Handle) -> Handle:
        """Return an object that is not a code object."""
        return self._hand_out(_Object())

    def drop(self, obj: Handle) -> None:
        """Release a reference; destroy the object if it was the last."""
        assert isinstance(obj, _Object)
        with self._lock:
            _, count = self._handed.pop(id(obj), (obj, 0))
            if count > 1:
                self._handed[id(obj)] = (obj, count - 1)
        self._release(obj)

    def _release(self, obj: _Object) -> None:
        with self._lock:
            obj.refs -= 1
            assert obj.refs >= 0, "object dropped too often"
            if obj.refs > 0 or not isinstance(obj, _Code):
                return
            del self._codes[obj.serial]
            # R-FREE-3, R-INTERP-3: every interpreter's values, each
            # with its own free function.
            frees: list[Freeing] = []
            for interp in self._interps:
                if interp.alive:
                    frees += self._take_values(interp, obj)
            frees = self._destruction_order(frees)
        self._run_frees(frees)
        for const in obj.consts:
            self._release(const)
        if self.reuse_addresses:
            with self._lock:
                # R-FREE-8: the address is reused, its storage is gone.
                self._free_addresses.append(obj.address)

    def code_id(self, code: Handle) -> int:
        """Return the address of a code object."""
        assert isinstance(code, _Code)
        return code.address

    # -- the API of the PEP ---------------------------------------------

    def request_index(self, interp: Handle, free: FreeFunc | None) -> int:
        """PyUnstable_Eval_RequestCodeExtraIndex."""
        state = self._as_interp(interp)
        with self._lock:
            index = self._find_free_index(state)
            if index is None:
                # R-INDEX-3, R-INDEX-4: an error; nothing changes.
                raise ApiError(REQUEST, "RuntimeError")
            if not self._allocate():
                raise ApiError(REQUEST, "MemoryError")  # R-ALLOC-3
            state.indices[index] = free  # R-INDEX-5: free may be None.
            return index

    def release_index(self, interp: Handle, index: int) -> None:
        """PyUnstable_Eval_ReleaseCodeExtraIndex."""
        state = self._as_interp(interp)
        with self._lock:
            if index not in state.indices:
                raise ApiError(RELEASE, "SystemError")  # R-INDEX-9
            free = state.indices.pop(index)
            # R-INDEX-7: free every value under the index in live code
            # objects; R-INDEX-8: the slots read NULL if it is reused.
            frees: list[Freeing] = []
            for code in self._codes.values():
                frees.append((free, self._read(state, code, index)))
                self._clear_released(state, code, index)
        self._run_frees(frees)

    def _clear_released(self, state: _Interp, code: _Code, index: int) -> None:
        """Empty the slot of a released index (R-INDEX-8)."""
        if self._inline_covers(state, code, index):
            assert code.inline is not None
            code.inline[index] = 0
        table = state.out_of_line.get(code.address)
        if table is not None:
            table.pop(index, None)
            if not table:
                del state.out_of_line[code.address]

    def get_extra(self, interp: Handle, code: Handle, index: int) -> int:
        """PyUnstable_Code_GetExtra."""
        state = self._as_interp(interp)
        with self._lock:
            checked, _ = self._check(GET, state, code, index)
            return self._read(state, checked, index)  # R-STORE-2

    def get_extra_on_error(
        self, interp: Handle, code: Handle, index: int
    ) -> tuple[str | None, int]:
        """Call Get expecting failure; *extra is cleared (R-STORE-10)."""
        try:
            value = self.get_extra(interp, code, index)
        except ApiError as exc:
            return exc.exc_type, 0
        raise AssertionError(f"{GET} succeeded and read {value:#x}")

    def set_extra(
        self, interp: Handle, code: Handle, index: int, value: int
    ) -> None:
        """PyUnstable_Code_SetExtra."""
        state = self._as_interp(interp)
        with self._lock:
            checked, free = self._check(SET, state, code, index)
            old = self._read(state, checked, index)
            if self._unchanged(old, value):
                return  # R-FREE-5: re-storing frees nothing.
            error: ApiError | None = None
            try:
                # R-FREE-9: the new value is in place before the free.
                self._write(state, checked, index, value)
            except ApiError as exc:
                error = exc
        if error is not None:
            self._set_failed(free, value)
            raise error
        # R-FREE-1, R-FREE-2, R-FREE-6: once, with the index's function.
        self._run_frees([(free, old)])

    def _unchanged(self, old: int, value: int) -> bool:
        return value == old

    def compare_exchange_extra(
        self,
        interp: Handle,
        code: Handle,
        index: int,
        expected: int,
        desired: int,
    ) -> tuple[bool, int]:
        """PyUnstable_Code_CompareExchangeExtra."""
        state = self._as_interp(interp)
        with self._lock:
            # The same checks as Set (R-STORE-12).
            checked, free = self._check(COMPARE_EXCHANGE, state, code, index)
            current = self._read(state, checked, index)
            if not self._matches(current, expected):
                # R-STORE-13: report the current value; store and free
                # nothing.
                return False, current
            if current == desired:
                return True, expected  # R-FREE-5: nothing to free.
            error: ApiError | None = None
            try:
                # Under the one lock: atomic with Get, Set and other
                # exchanges on the slot (R-THREAD-5).
                self._write(state, checked, index, desired)
            except ApiError as exc:
                error = ApiError(COMPARE_EXCHANGE, exc.exc_type)
        if error is not None:
            self._set_failed(free, desired)
            raise error
        # R-STORE-12: the previous value is freed after the store.
        self._free_exchanged(free, current)
        return True, expected

    def _free_exchanged(self, free: FreeFunc | None, value: int) -> None:
        """Free the value a CompareExchange replaced."""
        self._run_frees([(free, value)])

    def _matches(self, current: int, expected: int) -> bool:
        return current == expected

    def _set_failed(self, free: FreeFunc | None, value: int) -> None:
        """R-STORE-11, R-ALLOC-2: the caller keeps ``value``."""

    def add_hook(self, interp: Handle, hook: Hook) -> int:
        """PyUnstable_Code_AddConstructorHook."""
        state = self._as_interp(interp)
        with self._lock:
            if len(state.hooks) >= self.hook_capacity:
                raise ApiError(ADD_HOOK, "RuntimeError")  # R-HOOK-10
            if not self._allocate():
                raise ApiError(ADD_HOOK, "MemoryError")  # R-ALLOC-5
            # Ids are never reused, so a stale id cannot remove another
            # hook (R-HOOK-7).
            hook_id = state.next_hook_id
            state.next_hook_id += 1
            state.hooks.append((hook_id, hook))
            return hook_id

    def remove_hook(self, interp: Handle, hook_id: int) -> None:
        """PyUnstable_Code_RemoveConstructorHook."""
        state = self._as_interp(interp)
        with self._lock:
            for position, (registered, _) in enumerate(state.hooks):
                if registered == hook_id:
                    del state.hooks[position]  # R-HOOK-6
                    return
        raise ApiError(REMOVE_HOOK, "ValueError")  # R-HOOK-7

    def has_inline_extra(self, code: Handle) -> bool:
        """PyUnstable_Code_HasInlineExtra."""
        if not isinstance(code, _Code):
            raise ApiError(HAS_INLINE, "SystemError")
        return code.inline is not None  # R-FLAG-3

    # -- observation ------------------------------------------------------

    def co_flags(self, code: Handle) -> int:
        """Return co_flags."""
        assert isinstance(code, _Code)
        return code.flags

    def extra_bytes(self, code: Handle) -> int:
        """Bytes of inline and out-of-line storage (module docstring)."""
        assert isinstance(code, _Code)
        with self._lock:
            size = 0
            if code.inline is not None:
                size += INLINE_HEADER + WORD * len(code.inline)
            for interp in self._interps:
                table = interp.out_of_line.get(code.address)
                if table is not None:
                    size += OUT_OF_LINE_HEADER + WORD * len(table)
            return size

    def sizeof(self, code: Handle) -> int:
        """Return what sys.getsizeof() reports (R-FLAG-9)."""
        return BASE_SIZE + self.extra_bytes(code)

    def drop_with_error(self, obj: Handle, exc_type: str) -> str | None:
        """Drop ``obj`` with ``exc_type`` pending; return what is left."""
        self._set_pending(exc_type)
        try:
            self.drop(obj)
        finally:
            left = self._pending()
            self._set_pending(None)
        return left

    def python_view(self, code: Handle) -> PythonView:
        """Return what Python code sees: no CO_INLINE_EXTRA (R-FLAG-10)."""
        assert isinstance(code, _Code)
        shape = self._python_shape(code)
        return PythonView(
            co_flags=self._python_flags(code.flags),
            hash=hash(shape),
            marshal=repr(shape).encode(),
        )

    def python_equal(self, a: Handle, b: Handle) -> bool:
        """Code objects compare by what Python code sees (R-FLAG-10)."""
        assert isinstance(a, _Code)
        assert isinstance(b, _Code)
        return self._python_shape(a) == self._python_shape(b)

    def _python_flags(self, flags: int) -> int:
        return flags & ~CO_INLINE_EXTRA

    def _python_shape(self, code: _Code) -> tuple[object, ...]:
        """Return the code object's value: visible flags, nested code."""
        return (
            self._python_flags(code.flags),
            tuple(self._python_shape(const) for const in code.consts),
        )

    def fail_allocations(self, after: int, count: int = 1) -> None:
        """Let ``after`` allocations succeed, then fail ``count``."""
        with self._lock:
            self._alloc_after = after
            self._alloc_fail = count

    def take_free_calls(self) -> list[FreeCall]:
        """Return and forget the finished free calls."""
        with self._lock:
            done = [c for c in self._free_calls if c is not None]
            self._free_calls = [c for c in self._free_calls if c is None]
        return done

    def take_hook_calls(self) -> list[HookCall]:
        """Return and forget the hook calls."""
        with self._lock:
            calls, self._hook_calls = self._hook_calls, []
        return calls

    def take_unraisable(self) -> list[str]:
        """Return and forget the unraisable exceptions."""
        with self._lock:
            errors, self._unraisable = self._unraisable, []
        return errors

    def pending_error(self) -> str | None:
        """Return None: the model raises every error, none stays pending."""
        return None

    def close(self) -> None:
        """Drop what the caller still holds, then end every interpreter.

        Objects go first, newest first, as the C-ABI adapter does, so that
        code objects are destroyed while their interpreters still exist.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held = list(self._handed.values())
            self._handed.clear()
        for obj, count in reversed(held):
            for _ in range(count):
                self._release(obj)
        for interp in reversed(self._interps):
            self.end_interpreter(interp)


@dataclass
class ModelImplementation:
    """The model as an :class:`.adapter.Implementation`."""

    name: str = "model"
    version: str = __version__
    # Every capability but native threads: the model has no C loop to
    # run on threads of its own.
    capabilities: frozenset[Capability] = frozenset(Capability) - {
        Capability.NATIVE_THREADS
    }
    in_process: bool = True
    session_class: type[ModelSession] = ModelSession

    #: Sessions that may still hold blocks (for live_blocks).
    _sessions: list[ModelSession] = field(
        default_factory=list, repr=False, compare=False
    )

    def open_session(self) -> Session:
        """Return a session with a fresh main interpreter."""
        session = self.session_class()
        self._sessions.append(session)
        return session

    def live_blocks(self) -> int:
        """Blocks held by every session (Capability.LIVE_BLOCKS).

        A closed session that holds none is forgotten; one that leaked
        keeps counting, as leaked memory would.
        """
        counts = [(s, s.live_blocks()) for s in self._sessions]
        self._sessions[:] = [s for s, n in counts if n or not s._closed]
        return sum(n for _, n in counts)


#: The entry point ``model`` of the group ``coextra.implementations``.
implementation = ModelImplementation()
