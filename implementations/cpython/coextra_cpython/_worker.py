"""One worker process: the interpreter under test, driven over pipes.

The protocol is one JSON object per line in each direction (see
``worker/worker.py``).  A worker that dies, by a signal or an abort, is
reported as :class:`ImplementationCrashed` from the call during which it
died (and from every call waiting at that moment), with the signal's name
and CPython's fatal-error line.

Calls may come from several threads at once (the suite's thread tests).
Each request carries an id and its thread; the worker runs the requests
of different threads on different threads of its own, so answers arrive
in any order.  One waiting caller at a time reads the worker's output and
hands each answer to its owner, so no reader thread is needed.

Every request has a deadline (``COEXTRA_REQUEST_TIMEOUT``): a worker that
leaves one unanswered that long is hung, even while it keeps answering
other threads.  It is made to dump its threads' stacks and killed, and
every waiting call raises :class:`ImplementationTimedOut` naming the
request.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from itertools import count
from typing import IO, Any, NoReturn

from coextra_conformance.adapter import (
    ImplementationCrashed,
    ImplementationTimedOut,
)

#: Seconds one request may wait for its answer (``COEXTRA_REQUEST_TIMEOUT``
#: changes it).  Generous: a free-threaded build on a loaded machine can
#: take tens of seconds over one test's requests, and a hang costs this
#: long once.
DEFAULT_REQUEST_TIMEOUT = 300.0

#: Seconds a hung worker gets to dump its threads' stacks after SIGABRT
#: (``-X faulthandler``) before it is killed outright.
DUMP_GRACE = 5.0

#: The most of a hung worker's stack dump that goes into the report.
DUMP_LIMIT = 6000

#: Writes up to this size are atomic on a pipe, so a request that fits is
#: written whole once select() says the pipe is writable.
PIPE_BUF = 4096


class WorkerBug(RuntimeError):
    """The worker raised an unexpected Python exception (adapter bug)."""


class ApiFailure(Exception):
    """An API call in the worker returned its error value."""

    def __init__(self, function: str, exc_type: str | None) -> None:
        super().__init__(function, exc_type)
        self.function = function
        self.exc_type = exc_type


class Worker:
    """A running ``worker.py`` in the target interpreter."""

    def __init__(
        self,
        label: str,
        argv: list[str],
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.label = label
        self.timeout = timeout
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._buffer = b""
        self.hello: dict[str, Any] | None = None
        self.dead = False
        self._ids = count(1)
        self._write_lock = threading.Lock()
        # Guards _reading, _answers and _crash; never held while waiting
        # for the worker.  One caller at a time reads (_reading); the
        # answers it reads for others are parked in _answers and their
        # owners woken.
        self._state = threading.Condition(threading.Lock())
        self._reading = False
        self._answers: dict[int, dict[str, Any]] = {}
        self._crash: ImplementationCrashed | None = None
        self._reports_seen = 0
        # Requests sent and not yet answered: id -> (what, deadline).
        # Guarded by _pending_lock (written by senders, read by the
        # reader).
        self._pending: dict[int, tuple[str, float]] = {}
        self._pending_lock = threading.Lock()

    # -- transport -------------------------------------------------------

    def _overdue(self) -> tuple[str, float] | None:
        """Return the request waiting longest, or None if none waits."""
        with self._pending_lock:
            if not self._pending:
                return None
            return min(self._pending.values(), key=lambda p: p[1])

    def _read_line(self, what: str, deadline: float | None = None) -> bytes:
        """Read the next line of the worker's output.

        Waits until the earliest deadline of the requests in flight (or
        ``deadline`` when none is, as for the handshake); past it the
        worker is hung: it is killed and every waiting call gets
        ImplementationTimedOut, whatever other requests it was still
        answering meanwhile.
        """
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                oldest = self._overdue() or (what, deadline)
                left = oldest[1] - time.monotonic()
                if left <= 0 or not selector.select(left):
                    if oldest[1] <= time.monotonic():
                        self._hung(oldest[0])
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    # Name the oldest request in flight: the one the
                    # worker was (or had long been) running.
                    self._died(oldest[0], None)
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _hung(self, what: str) -> NoReturn:
        """Kill a worker that left ``what`` unanswered; raise the timeout.

        SIGABRT first: the worker runs with ``-X faulthandler``, which
        then writes every thread's Python stack to stderr, the evidence
        of where it hung.  SIGKILL if it is still there after that.
        """
        self.dead = True
        self.proc.send_signal(signal.SIGABRT)
        try:
            self.proc.wait(timeout=DUMP_GRACE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        dump = self.stack_dump()
        raise ImplementationTimedOut(
            f"{self.label} worker (pid {self.proc.pid}) gave no answer to "
            f"{what} within {self.timeout:g} s (COEXTRA_REQUEST_TIMEOUT) "
            f"and was killed"
            + (f"; its threads were at:\n{dump}" if dump else ""),
            self.timeout,
        )

    def _died(self, what: str, why: str | None) -> NoReturn:
        self.dead = True
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if why is None:
            if code < 0:
                try:
                    why = f"killed by {signal.Signals(-code).name}"
                except ValueError:
                    why = f"killed by signal {-code}"
            else:
                why = f"exited with status {code}"
        detail = self.stderr_summary()
        raise ImplementationCrashed(
            f"{self.label} worker (pid {self.proc.pid}) {why} during "
            f"{what}" + (f": {detail}" if detail else "")
        )

    def stack_dump(self) -> str:
        """Return faulthandler's dump of the worker's threads, if any.

        File names are cut to their last component: the dump goes into
        reports, which must not carry this machine's paths.
        """
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        start = text.find("Fatal Python error")
        if start < 0:
            return ""
        dump = re.sub(
            r'File "[^"]*[/\\]([^"/\\]+)"', r'File "\1"', text[start:]
        )
        return dump.strip()[:DUMP_LIMIT]

    def stderr_summary(self) -> str:
        """Return CPython's fatal-error line, or the last stderr line."""
        self._stderr.seek(0)
        lines = [
            line.strip()
            for line in self._stderr.read()
            .decode(errors="replace")
            .splitlines()
            if line.strip()
        ]
        for line in lines:
            if line.startswith("Fatal Python error"):
                return line
        return lines[-1] if lines else ""

    def sanitizer_reports(self) -> list[str]:
        """Return the ThreadSanitizer reports written to stderr so far.

        Each report runs from its ``WARNING: ThreadSanitizer:`` line to
        the separator line that ends it.  Reports already returned once
        are not returned again.
        """
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        reports: list[str] = []
        for chunk in text.split("WARNING: ThreadSanitizer:")[1:]:
            body, _, _ = chunk.partition("\n==================")
            reports.append("WARNING: ThreadSanitizer:" + body)
        new = reports[self._reports_seen :]
        self._reports_seen = len(reports)
        return new

    def handshake(self) -> dict[str, Any]:
        """Read (once) and return the worker's hello message."""
        if self.hello is not None:
            return self.hello
        self._become_reader(None)
        try:
            if self.hello is None:
                deadline = time.monotonic() + self.timeout
                message = json.loads(self._read_line("start-up", deadline))
                if "bug" in message:
                    self.dead = True
                    raise WorkerBug(
                        f"{self.label} worker failed to start:\n"
                        f"{message['bug']}"
                    )
                self.hello = message["hello"]
            return self.hello
        finally:
            self._stop_reading()

    def _send(self, op: str, args: dict[str, Any]) -> int:
        """Write one request; return its id.

        The request counts as in flight (its deadline runs) from here.
        """
        assert self.proc.stdin is not None
        ident = next(self._ids)
        request = {"op": op, "id": ident, "thread": threading.get_ident()}
        data = json.dumps({**request, **args}).encode() + b"\n"
        what = f"request {op}({describe_args(args)})"
        deadline = time.monotonic() + self.timeout
        with self._pending_lock:
            self._pending[ident] = (what, deadline)
        with self._write_lock:
            try:
                self._write(data, deadline)
            except BrokenPipeError:
                # The worker is gone; reading its answer meets the end of
                # its output, which reports the crash once for everyone.
                pass
            except TimeoutError:
                # The worker stopped reading its input: the read that
                # follows finds the deadline passed and reports the hang.
                pass
        return ident

    def _write(self, data: bytes, deadline: float) -> None:
        """Write ``data`` to the worker's input, giving up at ``deadline``.

        A worker that stops reading would otherwise block the writer, and
        every thread waiting for the write lock, for good.
        """
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_WRITE)
            while data:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise TimeoutError
                # select() promised room for PIPE_BUF bytes at least.
                data = data[os.write(fd, data[:PIPE_BUF]) :]

    def _become_reader(self, ident: int | None) -> dict[str, Any] | None:
        """Wait until this caller may read, or its answer has arrived.

        Return the answer to ``ident`` if another caller read it; else
        None, and this caller is now the one reader.  The wait is short
        or bounded: the reader waits no longer than the oldest request
        in flight may.
        """
        with self._state:
            while True:
                if ident is not None and ident in self._answers:
                    return self._answers.pop(ident)
                if self._crash is not None:
                    raise _again(self._crash)
                if not self._reading:
                    self._reading = True
                    return None
                self._state.wait()

    def _stop_reading(self) -> None:
        with self._state:
            self._reading = False
            # Someone else may have to take over reading.
            self._state.notify_all()

    def _answer(self, ident: int) -> dict[str, Any]:
        """Wait for the answer to request ``ident``; return it.

        Answers are handed to their owners through a condition, not by
        having each owner win a lock that readers hold while they wait
        for the worker: with that, a caller whose answer had long
        arrived could lose the lock to busy callers again and again
        (seconds per request on a loaded machine, for ever in a test
        whose other threads loop until it finishes).
        """
        found = self._become_reader(ident)
        if found is not None:
            return found
        try:
            while True:
                try:
                    line = self._read_line("the answer to a request")
                except ImplementationCrashed as crash:
                    with self._state:
                        self._crash = crash
                    raise
                message: dict[str, Any] = json.loads(line)
                answered = message.pop("id")
                with self._pending_lock:
                    self._pending.pop(answered, None)
                if answered == ident:
                    return message
                with self._state:
                    self._answers[answered] = message
                    self._state.notify_all()
        finally:
            self._stop_reading()

    def call(self, op: str, **args: Any) -> Any:
        """Run one request; return its result or raise."""
        if self.dead:
            raise ImplementationCrashed(
                f"{self.label} worker already died earlier in this session"
            )
        self.handshake()
        message = self._answer(self._send(op, args))
        if "ok" in message:
            return message["ok"]
        if "api" in message:
            function, exc_type = message["api"]
            raise ApiFailure(function, exc_type)
        raise WorkerBug(
            f"{self.label} worker failed in {op}:\n{message['bug']}"
        )

    def close(self) -> None:
        """Ask the worker to exit (end of input); do not wait for it."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def reap(self, timeout: float = 0.0) -> bool:
        """Collect the exited worker; return False if it still runs."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return True

    def kill(self) -> None:
        """Stop the worker now (used at exit for stragglers)."""
        self.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.reap(timeout=10)


def describe_args(args: dict[str, Any]) -> str:
    """Render a request's arguments for a report, kept short."""
    text = ", ".join(f"{key}={value!r}" for key, value in args.items())
    return text if len(text) <= 200 else text[:197] + "..."


def _again(crash: ImplementationCrashed) -> ImplementationCrashed:
    """Return a fresh exception like ``crash``, for another caller."""
    if isinstance(crash, ImplementationTimedOut):
        return ImplementationTimedOut(str(crash), crash.seconds)
    return ImplementationCrashed(str(crash))
