"""Tests of the stock CPython adapter (coextra_cpython) itself.

They drive the interpreter named by ``COEXTRA_PYTHON`` (default
``python3``) and, for the smoke test, every ``python3.X`` from 3.6 to
3.13 that can be found; missing interpreters are skipped.  A C compiler
is needed, as for the adapter.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("coextra_cpython")

from coextra_conformance.adapter import (
    ApiError,
    Capability,
    FreeAction,
    FreeFunc,
    Hook,
    ImplementationCrashed,
    ImplementationTimedOut,
)
from coextra_cpython import (
    AdapterLoadError,
    CPythonImplementation,
    _build,
)

MINORS = range(6, 14)


def _runnable(name: str) -> bool:
    try:
        _build.probe(name)
    except AdapterLoadError:
        return False
    return True


@pytest.fixture(scope="module")
def impl() -> Iterator[CPythonImplementation]:
    """Load the interpreter under test of this run (COEXTRA_PYTHON)."""
    name = os.environ.get("COEXTRA_PYTHON", "python3")
    try:
        implementation = CPythonImplementation(name)
    except AdapterLoadError as exc:
        pytest.skip(str(exc))
    yield implementation
    implementation.shutdown()


# -- loading: one clear line per problem ----------------------------------


def test_missing_interpreter_says_how_to_get_it() -> None:
    """A name that is not on PATH gives a one-line install hint."""
    with pytest.raises(AdapterLoadError) as info:
        CPythonImplementation("python3.99")
    message = str(info.value)
    assert "\n" not in message
    assert "python3.99" in message
    assert "not found" in message
    assert "pyenv install 3.99" in message


def test_missing_path_says_no_such_executable(tmp_path: Path) -> None:
    """A path that does not exist is reported as such."""
    missing = tmp_path / "bin" / "python3.6"
    with pytest.raises(AdapterLoadError, match="no such executable"):
        CPythonImplementation(str(missing))


def test_pyenv_fallback_picks_the_newest_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unselected pyenv version is found by its path, newest first."""
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    for version in ("3.6.9", "3.6.15", "3.6.15t", "3.7.1"):
        exe = tmp_path / "versions" / version / "bin" / "python3.6"
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    found = _build.pyenv_interpreter("python3.6")
    assert found == str(tmp_path / "versions/3.6.15/bin/python3.6")
    assert _build.pyenv_interpreter("python3.8") is None
    assert _build.pyenv_interpreter("/usr/bin/python3.6") is None


def _fake_interpreter(tmp_path: Path, prelude: str) -> str:
    """Write a wrapper running the probe after ``prelude``."""
    script = tmp_path / "fakepython"
    script.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -c "{prelude}; '
        'exec(sys.argv[1])" "$2"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_non_cpython_is_refused(tmp_path: Path) -> None:
    """An interpreter whose implementation is not CPython is refused."""
    fake = _fake_interpreter(
        tmp_path,
        "import sys, types; "
        "sys.implementation = types.SimpleNamespace("
        "**dict(vars(sys.implementation), name='pypy'))",
    )
    with pytest.raises(AdapterLoadError) as info:
        CPythonImplementation(fake)
    message = str(info.value)
    assert "pypy" in message
    assert "not CPython" in message
    assert "3.6-3.15" in message


def test_program_that_is_not_python_is_refused(tmp_path: Path) -> None:
    """A program that runs but prints no probe answer gets one line."""
    fake = tmp_path / "not-python"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(AdapterLoadError) as info:
        CPythonImplementation(str(fake))
    message = str(info.value)
    assert "did not answer like a Python interpreter" in message
    assert "3.6-3.15" in message


def test_too_old_version_is_refused(tmp_path: Path) -> None:
    """A CPython older than 3.6 is refused before anything is built."""
    fake = _fake_interpreter(
        tmp_path,
        "import sys, collections; "
        "V = collections.namedtuple('V', 'major minor micro'); "
        "sys.version_info = V(3, 5, 10)",
    )
    with pytest.raises(AdapterLoadError) as info:
        CPythonImplementation(fake)
    message = str(info.value)
    assert "CPython 3.5.10" in message
    assert "3.6-3.15" in message


def test_missing_compiler_is_one_line(
    impl: CPythonImplementation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without cc/gcc/clang the error names what is missing."""
    monkeypatch.setenv("COEXTRA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(AdapterLoadError) as info:
        CPythonImplementation(impl.target.executable)
    assert "no C compiler found" in str(info.value)
    assert "\n" not in str(info.value)


def test_build_is_cached(impl: CPythonImplementation) -> None:
    """A second build for the same interpreter reuses the extension."""
    first = _build.build(impl.target)
    built = sorted(first.iterdir())
    stamps = [p.stat().st_mtime_ns for p in built]
    second = _build.build(impl.target)
    assert second == first
    assert [p.stat().st_mtime_ns for p in sorted(second.iterdir())] == stamps


# -- capabilities ----------------------------------------------------------


def test_capabilities_match_the_version(impl: CPythonImplementation) -> None:
    """Hooks only where the interpreter has a real mechanism for them."""
    caps = impl.capabilities
    assert {Capability.STORAGE_SIZE, Capability.SIZEOF, Capability.COPY} <= (
        caps
    )
    has_watchers = impl.target.version[:2] >= (3, 12)
    assert (Capability.HOOKS in caps) == (has_watchers or impl.pep9999)
    # Sub-interpreters are real: Py_NewInterpreter / Py_EndInterpreter.
    assert {Capability.INTERPRETERS, Capability.FINALIZE} <= caps
    assert Capability.ALLOC_FAILURE in caps
    # Each calling thread gets a worker thread (see the test below).
    assert Capability.THREADS in caps
    assert Capability.NATIVE_THREADS in caps
    # Py_NewInterpreterFromConfig with an own GIL exists from 3.12 on.
    own_gil = impl.target.version[:2] >= (3, 12)
    assert (Capability.OWN_GIL in caps) == own_gil
    assert impl.in_process is False


# -- sessions ----------------------------------------------------------------


def test_each_session_has_a_fresh_interpreter(
    impl: CPythonImplementation,
) -> None:
    """Indices restart at 0: sessions never share a worker."""
    pids = set()
    for _ in range(3):
        session = impl.open_session()
        try:
            assert session.request_index(session.main, None) == 0
            pids.add(session._worker.proc.pid)
        finally:
            session.close()
    assert len(pids) == 3


def test_round_trip_and_free_at_destruction(
    impl: CPythonImplementation,
) -> None:
    """Values go through the real API; destruction calls the C free."""
    session = impl.open_session()
    try:
        main = session.main
        code = session.new_code(main, nested=2)
        assert len(session.nested(code)) == 2
        index = session.request_index(main, FreeFunc(3))
        session.set_extra(main, code, index, 0xABC)
        assert session.get_extra(main, code, index) == 0xABC
        assert session.take_free_calls() == []
        session.drop(code)
        calls = session.take_free_calls()
        assert [(c.tag, c.value) for c in calls] == [(3, 0xABC)]
        assert session.pending_error() is None
    finally:
        session.close()


def test_free_action_get_runs_inside_the_free_function(
    impl: CPythonImplementation,
) -> None:
    """A GET action reads another code object from within the free."""
    session = impl.open_session()
    try:
        main = session.main
        other = session.new_code(main)
        code = session.new_code(main)
        plain = session.request_index(main, FreeFunc(1))
        session.set_extra(main, other, plain, 0x77)
        acting = session.request_index(
            main, FreeFunc(2, FreeAction.GET, code=other, index=plain)
        )
        session.set_extra(main, code, acting, 0x55)
        session.drop(code)
        calls = [c for c in session.take_free_calls() if c.tag == 2]
        assert [(c.value, c.result, c.error) for c in calls] == [
            (0x55, 0x77, None)
        ]
    finally:
        session.close()


def test_storage_size_counts_the_allocated_block(
    impl: CPythonImplementation,
) -> None:
    """8 bytes for the pointer, then the block grows with the indices."""
    if impl.pep9999:
        pytest.skip("layout of a PEP 9999 build is measured differently")
    session = impl.open_session()
    try:
        main = session.main
        code = session.new_code(main)
        assert session.extra_bytes(code) == 8
        first = session.request_index(main, None)
        second = session.request_index(main, None)
        session.set_extra(main, code, first, 1)
        grown = session.extra_bytes(code)
        # ce_size plus two slots (3.6 also has a separate header pointer).
        assert grown - 8 in (8 + 2 * 8, 16 + 2 * 8)
        session.set_extra(main, code, second, 2)
        assert session.extra_bytes(code) == grown
    finally:
        session.close()


def test_api_errors_name_the_real_function(
    impl: CPythonImplementation,
) -> None:
    """Set on a non-code object fails with the version's function name."""
    session = impl.open_session()
    try:
        main = session.main
        index = session.request_index(main, None)
        other = session.new_non_code(main)
        with pytest.raises(ApiError) as info:
            session.set_extra(main, other, index, 1)
        assert info.value.function == impl.functions[2]
        assert info.value.exc_type == "SystemError"
    finally:
        session.close()


def test_copies_are_new_code_objects(impl: CPythonImplementation) -> None:
    """replace() and marshal give distinct, empty code objects."""
    session = impl.open_session()
    try:
        main = session.main
        code = session.new_code(main, nested=1)
        index = session.request_index(main, None)
        session.set_extra(main, code, index, 9)
        for how in ("replace", "marshal"):
            copy = session.copy_code(main, code, how)
            assert session.code_id(copy) != session.code_id(code)
            assert session.get_extra(main, copy, index) == 0
    finally:
        session.close()


def test_hooks_are_code_watchers_on_312(impl: CPythonImplementation) -> None:
    """On 3.12+ a hook sees each new code object, nested ones first."""
    if Capability.HOOKS not in impl.capabilities:
        pytest.skip("no hook mechanism in this interpreter")
    session = impl.open_session()
    try:
        main = session.main
        hook_id = session.add_hook(main, Hook(4))
        code = session.new_code(main, nested=1)
        ids = [session.code_id(c) for c in session.nested(code)]
        ids.append(session.code_id(code))
        seen = [c.code_id for c in session.take_hook_calls() if c.tag == 4]
        assert seen == ids
        session.remove_hook(main, hook_id)
        session.new_code(main)
        assert session.take_hook_calls() == []
    finally:
        session.close()


def test_allocation_failure_hits_only_the_api_call(
    impl: CPythonImplementation,
) -> None:
    """Armed failures are spent by the API call, not by the worker."""
    session = impl.open_session()
    try:
        main = session.main
        code = session.new_code(main)
        index = session.request_index(main, FreeFunc(1))
        session.fail_allocations(0, 1)
        session.take_free_calls()  # the worker's own work fails nothing
        with pytest.raises(ApiError) as info:
            session.set_extra(main, code, index, 0x5)
        # Stock CPython returns -1 without MemoryError (R-ALLOC-1).
        assert info.value.exc_type in (None, "MemoryError")
        session.set_extra(main, code, index, 0x6)
        assert session.get_extra(main, code, index) == 0x6
        session.fail_allocations(0, 1 << 30)
        with pytest.raises(ApiError) as info:
            session.new_code(main, nested=1)
        assert info.value.function == "code object construction"
        assert info.value.exc_type == "MemoryError"
        session.fail_allocations(0, 0)
        session.new_code(main)
    finally:
        session.close()


def test_sub_interpreters_share_the_code_object_storage(
    impl: CPythonImplementation,
) -> None:
    """Indices are per interpreter, the slots are not (stock CPython)."""
    session = impl.open_session()
    try:
        main = session.main
        other = session.new_interpreter()
        assert session.request_index(main, FreeFunc(1)) == 0
        assert session.request_index(other, FreeFunc(2)) == 0
        code = session.new_code(other, nested=1)
        session.set_extra(main, code, 0, 0x10)
        if impl.pep9999:
            assert session.get_extra(other, code, 0) == 0
        else:
            # One co_extra array serves both: other's Set replaces (and
            # frees, with its own free function) what main stored.
            assert session.get_extra(other, code, 0) == 0x10
            session.set_extra(other, code, 0, 0x20)
            frees = session.take_free_calls()
            assert [(c.tag, c.value) for c in frees] == [(2, 0x10)]
        session.end_interpreter(other)
        with pytest.raises(Exception, match="unknown or ended"):
            session.request_index(other, None)
    finally:
        session.close()


def test_caller_flags_cost_one_construction(
    impl: CPythonImplementation,
) -> None:
    """new_code(flags=...) constructs each code object exactly once."""
    session = impl.open_session()
    try:
        main = session.main
        if Capability.HOOKS in impl.capabilities:
            session.add_hook(main, Hook(5))
        code = session.new_code(main, nested=2, flags=0x20000000)
        assert session.co_flags(code) & 0x20000000 or impl.pep9999
        ids = [session.code_id(c) for c in session.nested(code)]
        ids.append(session.code_id(code))
        if Capability.HOOKS in impl.capabilities:
            seen = [c.code_id for c in session.take_hook_calls()]
            assert sorted(seen) == sorted(ids)
    finally:
        session.close()


def test_threads_run_on_worker_threads_of_their_own(
    impl: CPythonImplementation,
) -> None:
    """Each calling thread's requests run on one worker thread of its own.

    The session's thread keeps the worker's main thread; two other
    threads get two distinct worker threads, and their calls interleave
    with answers coming back out of order without mixing them up.
    """
    session = impl.open_session()
    try:
        own = session.worker_thread()
        seen: dict[int, set[int]] = {}
        values: dict[int, list[int]] = {}
        code = [session.new_code(session.main) for _ in range(2)]
        index = session.request_index(session.main, None)

        def work(n: int) -> None:
            seen[n] = {session.worker_thread() for _ in range(20)}
            values[n] = []
            for r in range(200):
                session.set_extra(session.main, code[n], index, 2 * r + 1)
                got = session.get_extra(session.main, code[n], index)
                values[n].append(got - (2 * r + 1))

        threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen[0]) == len(seen[1]) == 1
        assert len(seen[0] | seen[1] | {own}) == 3
        assert set(values[0]) == set(values[1]) == {0}
        assert session.worker_thread() == own
    finally:
        session.close()


@pytest.mark.parametrize("how", ["abort", "11"])
def test_crash_is_reported_and_next_session_works(
    impl: CPythonImplementation, how: str
) -> None:
    """A dying worker raises ImplementationCrashed naming the signal."""
    session = impl.open_session()
    with pytest.raises(ImplementationCrashed) as info:
        session.crash(how)
    expected = "SIGABRT" if how == "abort" else "SIGSEGV"
    assert expected in str(info.value)
    with pytest.raises(ImplementationCrashed, match="already died"):
        session.request_index(session.main, None)
    session.close()
    again = impl.open_session()
    try:
        assert again.request_index(again.main, None) == 0
    finally:
        again.close()


def test_hang_is_a_timeout_with_the_request_and_stacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request that is never answered ends in ImplementationTimedOut.

    The worker is killed after COEXTRA_REQUEST_TIMEOUT seconds, even
    while another thread's requests keep being answered; the error names
    the request and carries the Python stacks of the worker's threads.
    """
    monkeypatch.setenv("COEXTRA_REQUEST_TIMEOUT", "3")
    try:
        implementation = CPythonImplementation(
            os.environ.get("COEXTRA_PYTHON", "python3")
        )
    except AdapterLoadError as exc:
        pytest.skip(str(exc))
    try:
        session = implementation.open_session()
        busy = threading.Event()
        chatter: list[BaseException] = []

        def chat() -> None:
            # Answers keep coming while the other request hangs: they
            # must not keep the hung one alive.
            try:
                while not busy.is_set():
                    session.worker_thread()
            except ImplementationCrashed as exc:
                chatter.append(exc)

        other = threading.Thread(target=chat)
        other.start()
        started = time.monotonic()
        try:
            with pytest.raises(ImplementationTimedOut) as info:
                session.hang()
        finally:
            busy.set()
            other.join()
        elapsed = time.monotonic() - started
        assert 3 <= elapsed < 60
        message = str(info.value)
        assert "request hang()" in message
        assert "within 3 s" in message
        assert "op_hang" in message  # faulthandler's stack of the thread
        assert info.value.seconds == 3
        assert "/" not in message.split("were at:", 1)[1].split('"')[1]
        with pytest.raises(ImplementationCrashed, match="already died"):
            session.request_index(session.main, None)
        session.close()
        again = implementation.open_session()
        try:
            assert again.request_index(again.main, None) == 0
        finally:
            again.close()
    finally:
        implementation.shutdown()


def test_hung_worker_leaves_a_complete_report(tmp_path: Path) -> None:
    """A suite run whose worker hangs ends, and reports the test timeout.

    The worker is told to hang on every GetExtra request: the test that
    calls it is reported as timeout with the request, the one that does
    not still passes, and the JSON report is written.
    """
    name = os.environ.get("COEXTRA_PYTHON", "python3")
    if not _runnable(name):
        pytest.skip(f"{name} is not available here")
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "COEXTRA_PYTHON": name,
        "COEXTRA_REQUEST_TIMEOUT": "3",
        "COEXTRA_WORKER_HANG_ON": "get_extra",
    }
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "coextra_conformance",
            "--coextra-impl=cpython",
            f"--coextra-report={report}",
            "-p",
            "no:cacheprovider",
            "-k",
            "test_set_then_get_round_trips"
            " or test_concurrent_requests_are_distinct",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert time.monotonic() - started < 300, result.stdout[-2000:]
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr
    data = json.loads(report.read_text())
    tests = {
        t["nodeid"].rsplit("::", 1)[1]: t
        for r in data["requirements"]
        for t in r["tests"]
    }
    hung = tests["test_set_then_get_round_trips"]
    assert hung["outcome"] == "timeout", hung
    assert "request get_extra(" in hung["message"]
    assert "within 3 s" in hung["message"]


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf"])
def test_bad_request_timeout_is_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """COEXTRA_REQUEST_TIMEOUT must be a positive number of seconds."""
    monkeypatch.setenv("COEXTRA_REQUEST_TIMEOUT", value)
    with pytest.raises(AdapterLoadError) as info:
        CPythonImplementation("python3")
    text = str(info.value)
    assert "\n" not in text
    assert "COEXTRA_REQUEST_TIMEOUT" in text
    assert "positive number of seconds" in text


# -- every installed version -------------------------------------------------


@pytest.mark.parametrize("minor", MINORS, ids=lambda m: f"3.{m}")
def test_worker_runs_on_every_version(minor: int) -> None:
    """The worker and the extension work on each python3.X found."""
    name = f"python3.{minor}"
    if not _runnable(name):
        pytest.skip(f"{name} is not available here")
    implementation = CPythonImplementation(name)
    try:
        assert implementation.target.version[:2] == (3, minor)
        session = implementation.open_session()
        main = session.main
        code = session.new_code(main, nested=1)
        index = session.request_index(main, FreeFunc(0))
        session.set_extra(main, code, index, 0x1234)
        assert session.get_extra(main, code, index) == 0x1234
        session.drop(code)
        assert [c.value for c in session.take_free_calls()] == [0x1234]
        session.close()
    finally:
        implementation.shutdown()


# -- interpreters in another root file system (CPython 3.14, 3.15) -------


def test_bad_root_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COEXTRA_ROOT naming no root file system gets one line."""
    monkeypatch.setenv(_build.ROOT_VAR, str(tmp_path))
    with pytest.raises(AdapterLoadError) as info:
        CPythonImplementation("python3.14")
    message = str(info.value)
    assert "\n" not in message
    assert "not a root file system" in message
    assert "sid_root.py" in message


def test_paths_inside_a_root(tmp_path: Path) -> None:
    """Host paths under the root are handed to the target from its /."""
    inner = tmp_path / "var" / "cache" / "x.py"
    assert _build.inside(str(tmp_path), inner) == "/var/cache/x.py"
    assert _build.inside(None, inner) == str(inner)
    assert _build.launcher(str(tmp_path)) == ["chroot", str(tmp_path)]
    assert _build.launcher(None) == []


def _sid_root() -> str | None:
    """Return the cached sid root, if sid_root.py built one."""
    script = (
        Path(__file__).resolve().parent.parent
        / "implementations"
        / "cpython"
        / "sid_root.py"
    )
    result = subprocess.run(
        [sys.executable, str(script), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.mark.parametrize("minor", [14, 15], ids=lambda m: f"3.{m}")
def test_worker_runs_in_the_sid_root(
    minor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3.14 and 3.15 run inside the sid root; the extension is built there."""
    root = _sid_root()
    if root is None or os.geteuid() != 0:
        pytest.skip("no cached sid root (or not root): sid_root.py builds it")
    monkeypatch.setenv(_build.ROOT_VAR, root)
    implementation = CPythonImplementation(f"python3.{minor}")
    try:
        assert implementation.target.version[:2] == (3, minor)
        assert implementation.target.root == root
        session = implementation.open_session()
        code = session.new_code(session.main)
        index = session.request_index(session.main, FreeFunc(0))
        session.set_extra(session.main, code, index, 0x1234)
        assert session.get_extra(session.main, code, index) == 0x1234
        session.close()
    finally:
        implementation.shutdown()
