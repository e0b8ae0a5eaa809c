"""Run a test in a forked child so that a crash cannot take pytest down.

Only the call phase is forked: fixtures are set up and torn down in the
pytest process, and the child works on its copy of them.  The child sends
one JSON message back over a pipe and leaves with ``os._exit`` so that no
pytest or atexit machinery runs twice.  A child that dies by a signal, or
exits without sending its message, crashed: the test fails with
:data:`~.report.CRASH_PROPERTY` in its user properties.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from collections.abc import Callable

import pytest

from .report import CRASH_PROPERTY

#: Set in a child, so that the call hook does not fork again.
_in_child = False


def available() -> bool:
    """Tell whether fork isolation works here (and we are not a child)."""
    return hasattr(os, "fork") and not _in_child


def run_isolated(item: pytest.Function, check: Callable[[], None]) -> None:
    """Run ``item``'s test function in a child process.

    ``check`` runs in the child after the test function returns (the
    child's fixture state is invisible to the parent).  Re-raises the
    child's failure or skip in this process.
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process (xdist's
        # workers have an I/O thread) may deadlock; the child touches
        # nothing those threads own, and exits with os._exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(item, check, write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    _settle(item, data, status)


def _child(item: pytest.Function, check: Callable[[], None], fd: int) -> None:
    global _in_child
    _in_child = True
    try:
        try:
            item.ihook.pytest_pyfunc_call(pyfuncitem=item)
            check()
            message: dict[str, object] = {"outcome": "passed"}
        except pytest.skip.Exception as exc:
            message = {"outcome": "skipped", "text": exc.msg}
        except BaseException:
            excinfo = pytest.ExceptionInfo[BaseException].from_current()
            # The exception line first: it becomes the short message.
            text = f"{excinfo.exconly()}\n\n{item.repr_failure(excinfo)}"
            message = {"outcome": "failed", "text": text}
        sys.stdout.flush()
        sys.stderr.flush()
        data = json.dumps(message).encode()
        while data:
            data = data[os.write(fd, data) :]
    finally:
        # Never return into pytest: the parent reports this test.
        os._exit(0)


def _settle(item: pytest.Function, data: bytes, status: int) -> None:
    try:
        message = json.loads(data) if data else None
    except ValueError:
        message = None
    if isinstance(message, dict) and os.WIFEXITED(status):
        if message.get("outcome") == "passed":
            return
        text = str(message.get("text", ""))
        if message.get("outcome") == "skipped":
            pytest.skip(text)
        pytest.fail(text, pytrace=False)
    item.user_properties.append(CRASH_PROPERTY)
    pytest.fail(
        f"CRASHED: the isolated test process {describe_status(status)}",
        pytrace=False,
    )


def describe_status(status: int) -> str:
    """Say in words how a child process ended."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {number} ({name})"
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return f"exited with status {code} without reporting a result"
    return f"ended with wait status {status}"
