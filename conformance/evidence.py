"""What an implementation actually did, carried into every verdict.

A failing test says more than "fail": the report holds, per failing test,
an ``evidence`` object (schema: ``report.schema.json``) with what was
observed.  Two sources feed it:

* the assertion helpers raise :class:`Deviation`, an ``AssertionError``
  that carries the C function, what the requirement expects and what the
  implementation did (return value, exception class, value read, free
  calls);
* every session a test gets is wrapped in a :class:`RecordingSession`,
  which keeps the last calls made through it with their results, so that
  even a plain ``assert`` leaves the calls that led to it.

A set-up step that cannot be completed raises :class:`PreconditionFailed`
instead: the test is then reported as ``error``, never as a failure of
the requirement it is about.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

from .adapter import ApiError, FreeCall, HookCall

#: user_properties key of a test's evidence (a JSON object).
EVIDENCE_PROPERTY = "coextra_evidence"
#: user_properties entry that marks a test whose set-up step failed.
PRECONDITION_PROPERTY = ("coextra_outcome", "error")
#: How many of the last calls a test made are kept as evidence.
CALLS_KEPT = 12

#: JSON-compatible values.
Json = Any


class Deviation(AssertionError):
    """An implementation did something its requirement forbids.

    ``evidence`` holds what was observed, as JSON-compatible data.
    """

    def __init__(self, message: str, **evidence: Json) -> None:
        """Keep the message and the observation fields."""
        super().__init__(message)
        self.evidence: dict[str, Json] = {
            key: to_json(value) for key, value in evidence.items()
        }


class PreconditionFailed(Exception):
    """A set-up step the test needs did not work (reported as ``error``).

    The requirement under test was not reached, so its verdict must not
    move: the test ends in ``error`` with this message.
    """

    def __init__(self, message: str, **evidence: Json) -> None:
        """Keep the message and the observation fields."""
        super().__init__(message)
        self.evidence: dict[str, Json] = {
            key: to_json(value) for key, value in evidence.items()
        }


def to_json(value: object) -> Json:
    """Turn an observed value into JSON-compatible data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, FreeCall):
        data: dict[str, Json] = {"tag": value.tag, "value": value.value}
        if value.result is not None:
            data["result"] = value.result
        if value.error is not None:
            data["error"] = value.error
        return data
    if isinstance(value, HookCall):
        return {"tag": value.tag, "code_id": value.code_id}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    return repr(value)


def evidence_of(exc: BaseException) -> dict[str, Json]:
    """Return the observation an exception carries, if any."""
    found = getattr(exc, "evidence", None)
    if isinstance(found, dict):
        return dict(found)
    if isinstance(exc, ApiError):
        return {
            "kind": "api-error",
            "function": exc.function,
            "exception": exc.exc_type,
        }
    return {}


# Calls of a session whose results are handles: recorded by label.
_MAKERS = {
    "new_code": "code",
    "copy_code": "code",
    "new_interpreter": "interp",
    "new_non_code": "object",
}


class RecordingSession:
    """A session that remembers the last calls made through it.

    Every method of the wrapped session is reachable unchanged; calls of
    methods are recorded with their arguments and their result or error.
    Handles are shown by labels (``main``, ``code#3``) instead of the
    adapter's objects, which may not be printable.
    """

    def __init__(self, session: object) -> None:
        """Wrap ``session``."""
        self._session = session
        self._labels: dict[int, str] = {}
        self._held: list[object] = []  # Keeps labelled objects alive.
        self._counts: dict[str, int] = {}
        self._calls: deque[dict[str, Json]] = deque(maxlen=CALLS_KEPT)
        self._lock = threading.Lock()
        main = getattr(session, "main", None)
        if main is not None:
            self._label(main, "main")

    @property
    def main(self) -> object:
        """The wrapped session's main interpreter."""
        return cast(Any, self._session).main

    @property
    def wrapped(self) -> object:
        """The session this one records."""
        return self._session

    def calls(self) -> list[dict[str, Json]]:
        """Return the recorded calls, oldest first."""
        with self._lock:
            return list(self._calls)

    def _label(self, obj: object, label: str) -> Json:
        if obj is None or isinstance(obj, (bool, int, str)):
            # An adapter whose handles are plain values: an index of the
            # same value must not be shown as a handle.
            return obj
        with self._lock:
            self._labels[id(obj)] = label
            self._held.append(obj)
        return label

    def _show(self, value: object) -> Json:
        label = self._labels.get(id(value))
        if label is not None:
            return label
        if isinstance(value, (list, tuple)):
            return [self._show(v) for v in value]
        if isinstance(value, (FreeCall, HookCall)):
            return to_json(value)
        if value is None or isinstance(value, (bool, int, str)):
            return value
        # FreeFunc, Hook and other argument objects: their fields.
        fields = getattr(value, "__dataclass_fields__", None)
        if fields is not None:
            return {
                name: self._show(getattr(value, name))
                for name in fields
                if getattr(value, name) not in (None, 0, "record")
            } | {"type": type(value).__name__}
        return repr(value)

    def __getattr__(self, name: str) -> object:
        """Reach the wrapped session; record calls of its methods."""
        attribute = getattr(self._session, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute
        method = cast(Callable[..., object], attribute)

        def recorded(*args: object, **kwargs: object) -> object:
            entry: dict[str, Json] = {"call": name}
            if args:
                entry["args"] = [self._show(a) for a in args]
            if kwargs:
                entry["kwargs"] = {k: self._show(v) for k, v in kwargs.items()}
            try:
                result = method(*args, **kwargs)
            except ApiError as exc:
                entry["error"] = exc.exc_type
                self._record(entry)
                raise
            except Exception as exc:
                entry["raised"] = type(exc).__name__
                self._record(entry)
                raise
            if name in _MAKERS:
                kind = _MAKERS[name]
                with self._lock:
                    number = self._counts[kind] = self._counts.get(kind, 0) + 1
                entry["result"] = self._label(result, f"{kind}#{number}")
            elif name == "nested" and isinstance(result, list):
                for child in result:
                    if id(child) not in self._labels and not isinstance(
                        child, int
                    ):
                        with self._lock:
                            number = self._counts["code"] = (
                                self._counts.get("code", 0) + 1
                            )
                        self._label(child, f"code#{number}")
                entry["result"] = self._show(result)
            elif result is not None:
                entry["result"] = self._show(result)
            self._record(entry)
            return result

        return recorded

    def __setattr__(self, name: str, value: object) -> None:
        """Set the wrapped session's attributes (own ones start with _)."""
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._session, name, value)

    def _record(self, entry: dict[str, Json]) -> None:
        with self._lock:
            self._calls.append(entry)
