"""Run tests in forked children so that a crash cannot take pytest down.

Two ways, both for implementations that run inside the pytest process:

* :func:`run_protocol` forks the whole test (set-up, call, tear-down):
  the plugin does so for every conformance test, so a segfault, an abort
  or a hang anywhere in a test ends that test only.  The child sends its
  phase reports back over a pipe; a child that dies by a signal, exits
  without sending them, or outlives its time limit is reported here as
  ``crashed`` (with the signal) or ``timeout``.
* :func:`run_isolated` forks only the call phase of a test marked
  ``isolated`` that the plugin does not fork whole.

Children leave with ``os._exit`` so that no pytest or atexit machinery
runs twice.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Literal

import pytest
from _pytest.runner import runtestprotocol

from .evidence import EVIDENCE_PROPERTY
from .report import CRASH_PROPERTY, TIMEOUT_PROPERTY

#: Set in a child, so that the call hook does not fork again.
_in_child = False


def available() -> bool:
    """Tell whether fork isolation works here (and we are not a child)."""
    return hasattr(os, "fork") and not _in_child


def _fork() -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process (xdist's
        # workers have an I/O thread) may deadlock; the child touches
        # nothing those threads own, and exits with os._exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def run_protocol(
    item: pytest.Item, timeout: float | None
) -> list[pytest.TestReport]:
    """Run ``item``'s set-up, call and tear-down in a child process.

    Return the phase reports, ready for ``pytest_runtest_logreport``.  A
    child that does not report is killed after ``timeout`` seconds (no
    limit when None) and its test reported as ``timeout``; one that dies
    is reported as ``crashed`` with how it ended.
    """
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = _fork()
    if pid == 0:
        os.close(read_fd)
        _protocol_child(item, write_fd)
    os.close(write_fd)
    data, timed_out = _read_all(read_fd, timeout)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    try:
        decoded = json.loads(data) if data else None
    except ValueError:
        decoded = None
    hook = item.config.hook
    clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    if isinstance(decoded, list) and not timed_out and clean:
        reports = [
            hook.pytest_report_from_serializable(
                config=item.config, data=entry
            )
            for entry in decoded
        ]
        for report in reports:
            # JSON turned tuples into lists; pytest's reporting expects
            # a skip's (path, line, reason) and properties as tuples.
            if isinstance(report.longrepr, list):
                report.longrepr = tuple(report.longrepr)
            report.user_properties = [tuple(p) for p in report.user_properties]
        return reports
    elapsed = time.monotonic() - started
    return _lost(
        item,
        status,
        timeout if timed_out else None,
        elapsed,
        data_sent=isinstance(decoded, list),
    )


def _protocol_child(item: pytest.Item, fd: int) -> None:
    global _in_child
    _in_child = True
    try:
        # Fixtures of every scope are set up and torn down in here: the
        # parent never sets any up, so the child leaves nothing behind.
        reports = runtestprotocol(item, log=False, nextitem=None)
        hook = item.config.hook
        data = json.dumps(
            [
                hook.pytest_report_to_serializable(
                    config=item.config, report=report
                )
                for report in reports
            ]
        ).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os._exit(0)


def _read_all(fd: int, timeout: float | None) -> tuple[bytes, bool]:
    """Read ``fd`` to its end; tell whether the time ran out first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: list[bytes] = []
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while True:
            wait = None
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return b"".join(chunks), True
            ready, _, _ = select.select([pipe], [], [], wait)
            if not ready:
                continue
            chunk = pipe.read(1 << 16)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)


def _lost(
    item: pytest.Item,
    status: int,
    timeout: float | None,
    elapsed: float,
    *,
    data_sent: bool = False,
) -> list[pytest.TestReport]:
    """Report a test whose child died or hung, phase by phase."""
    if timeout is not None:
        text = (
            f"TIMEOUT: the isolated test process did not finish within "
            f"{timeout:g} s and was killed"
        )
        marker = TIMEOUT_PROPERTY
        evidence: dict[str, object] = {"kind": "timeout", "seconds": timeout}
    else:
        text = f"CRASHED: the isolated test process {describe_status(status)}"
        if data_sent and os.WIFEXITED(status):
            # The child reports, then leaves with status 0; only a tool
            # watching it (valgrind's or ASan's error exit code) changes
            # that.
            text = (
                f"CRASHED: the isolated test process reported its result, "
                f"then exited with status {os.WEXITSTATUS(status)} (a "
                f"memory checker may have found errors)"
            )
        elif data_sent:
            text += " after it had reported its result"
        marker = CRASH_PROPERTY
        evidence = {"kind": "crash", **status_fields(status)}
    properties = [
        *item.user_properties,
        marker,
        (EVIDENCE_PROPERTY, evidence),
    ]
    location = item.location
    keywords: dict[str, Literal[1]] = dict.fromkeys(item.keywords, 1)
    call = pytest.TestReport(
        item.nodeid,
        location,
        keywords,
        "failed",
        text,
        "call",
        duration=elapsed,
        user_properties=properties,
    )
    expected = item.get_closest_marker("xfail")
    if expected is not None:
        # What pytest's xfail handling does in the child that died.
        call.outcome = "skipped"
        call.wasxfail = str(expected.kwargs.get("reason", ""))
    return [
        pytest.TestReport(
            item.nodeid, location, keywords, "passed", None, "setup"
        ),
        call,
        pytest.TestReport(
            item.nodeid, location, keywords, "passed", None, "teardown"
        ),
    ]


def status_fields(status: int) -> dict[str, object]:
    """Return how a child ended as evidence fields."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        return {"signal": number, "signal_name": name}
    if os.WIFEXITED(status):
        return {"exit_status": os.WEXITSTATUS(status)}
    return {"wait_status": status}


def run_isolated(item: pytest.Function, check: Callable[[], None]) -> None:
    """Run ``item``'s test function in a child process.

    ``check`` runs in the child after the test function returns (the
    child's fixture state is invisible to the parent).  Re-raises the
    child's failure or skip in this process.
    """
    read_fd, write_fd = os.pipe()
    pid = _fork()
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
    item.user_properties.append(
        (EVIDENCE_PROPERTY, {"kind": "crash", **status_fields(status)})
    )
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
