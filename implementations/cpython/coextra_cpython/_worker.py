"""One worker process: the interpreter under test, driven over pipes.

The protocol is one JSON object per line in each direction (see
``worker/worker.py``).  A worker that dies, by a signal or an abort, is
reported as :class:`ImplementationCrashed` from the call during which it
died (and from every call waiting at that moment), with the signal's name
and CPython's fatal-error line.

Calls may come from several threads at once (the suite's thread tests).
Each request carries an id and its thread; the worker runs the requests
of different threads on different threads of its own, so answers arrive
in any order.  The caller that holds the read lock reads the next answer
and parks it for its owner, so no reader thread is needed.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from itertools import count
from typing import IO, Any

from coextra_conformance.adapter import ImplementationCrashed

#: Seconds a single request may take before the worker is declared hung.
REQUEST_TIMEOUT = 120.0


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

    def __init__(self, label: str, argv: list[str]) -> None:
        self.label = label
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
        # Held while reading answers; guards _answers and _crash.
        self._state = threading.Lock()
        self._answers: dict[int, dict[str, Any]] = {}
        self._crash: ImplementationCrashed | None = None
        self._reports_seen = 0

    # -- transport -------------------------------------------------------

    def _read_line(self, what: str) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + REQUEST_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.proc.kill()
                    self._died(what, f"hung for {REQUEST_TIMEOUT:.0f} s")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    self._died(what, None)
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _died(self, what: str, why: str | None) -> None:
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
        with self._state:
            if self.hello is None:
                message = json.loads(self._read_line("start-up"))
                if "bug" in message:
                    self.dead = True
                    raise WorkerBug(
                        f"{self.label} worker failed to start:\n"
                        f"{message['bug']}"
                    )
                self.hello = message["hello"]
            return self.hello

    def _send(self, op: str, args: dict[str, Any]) -> int:
        """Write one request; return its id."""
        assert self.proc.stdin is not None
        ident = next(self._ids)
        request = {"op": op, "id": ident, "thread": threading.get_ident()}
        data = json.dumps({**request, **args}).encode() + b"\n"
        with self._write_lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except BrokenPipeError:
                # The worker is gone; reading its answer meets the end of
                # its output, which reports the crash once for everyone.
                pass
        return ident

    def _answer(self, op: str, ident: int) -> dict[str, Any]:
        """Wait for the answer to request ``ident``."""
        # The caller holding _state reads; an answer for another caller
        # is parked in _answers, where its owner finds it once it gets
        # the lock.  Requests are already sent, so the worker makes
        # progress on all of them meanwhile.
        with self._state:
            while ident not in self._answers:
                if self._crash is not None:
                    raise ImplementationCrashed(str(self._crash))
                try:
                    line = self._read_line(op)
                except ImplementationCrashed as crash:
                    self._crash = crash
                    raise
                message = json.loads(line)
                self._answers[message.pop("id")] = message
            return self._answers.pop(ident)

    def call(self, op: str, **args: Any) -> Any:
        """Run one request; return its result or raise."""
        if self.dead:
            raise ImplementationCrashed(
                f"{self.label} worker already died earlier in this session"
            )
        self.handshake()
        message = self._answer(op, self._send(op, args))
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
