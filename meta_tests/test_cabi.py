"""Self-tests of the generic C ABI loader (coextra_conformance.cabi).

The loader is checked against the C compiler (the cdef it derives from
the header must lay the table out exactly as C does) and against the
reference implementation built as a plain shared library.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import cffi
import pytest

from coextra_conformance import cabi
from coextra_conformance.adapter import (
    CO_INLINE_EXTRA,
    ApiError,
    Capability,
    FreeAction,
    FreeCall,
    FreeFunc,
    Hook,
    HookAction,
    Session,
)

ROOT = Path(__file__).resolve().parents[1]
BUILD_SHARED = ROOT / "reference_impl" / "build_shared.py"

needs_cc = pytest.mark.skipif(
    shutil.which("gcc") is None, reason="needs gcc to build C"
)


def _compile_and_run(tmp: Path, source: str) -> str:
    c_file = tmp / "probe.c"
    exe = tmp / "probe"
    c_file.write_text(source, encoding="utf-8")
    subprocess.run(
        [
            "gcc",
            "-std=c11",
            "-I",
            str(cabi.HEADER.parent),
            str(c_file),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return subprocess.run(
        [str(exe)], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the reference as a plain shared library."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the reference library")
    out = tmp_path_factory.mktemp("lib") / "libcoextra_ref.so"
    subprocess.run(
        [sys.executable, str(BUILD_SHARED), "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def impl(library: Path) -> cabi.TableImplementation:
    """Return the reference, loaded through load_library."""
    return cabi.load_library(str(library))


@pytest.fixture(scope="session")
def live_blocks(library: Path) -> Any:
    """Return a function reading the library's live heap block count."""
    ffi = cffi.FFI()
    ffi.cdef("intptr_t coextra_live_blocks(void);")
    lib: Any = ffi.dlopen(str(library))
    return lambda: int(lib.coextra_live_blocks())


@pytest.fixture
def session(impl: cabi.TableImplementation) -> Any:
    """Yield a session and close it after the test."""
    s = impl.open_session()
    yield s
    s.close()


# -- the cdef matches the header ------------------------------------------


def test_cdef_drops_preprocessor_and_cplusplus_block() -> None:
    """The derived cdef has no preprocessor line and no extern "C"."""
    cdef = cabi.header_to_cdef(cabi.HEADER.read_text(encoding="utf-8"))
    assert "#" not in cdef
    assert 'extern "C"' not in cdef
    assert "coextra_get_table" in cdef


def test_cdef_keeps_conditional_text_outside_cplusplus() -> None:
    """Only the __cplusplus branch of a conditional is dropped."""
    text = "#ifdef __cplusplus\nA\n#else\nB\n#endif\n#ifndef X\nC\n#endif\n"
    assert cabi.header_to_cdef(text).split() == ["B", "C"]


@needs_cc
def test_table_layout_matches_c_compiler(tmp_path: Path) -> None:
    """Cffi lays the table out exactly as the C compiler does."""
    ffi = cabi.abi_ffi()
    fields = [name for name, _ in ffi.typeof("coextra_table").fields]
    prints = "".join(
        f'    printf("{name} %zu\\n", offsetof(coextra_table, {name}));\n'
        for name in fields
    )
    out = _compile_and_run(
        tmp_path,
        "#include <stdio.h>\n#include <stddef.h>\n"
        '#include "coextra_abi.h"\n'
        "int main(void) {\n"
        '    printf("sizeof %zu\\n", sizeof(coextra_table));\n'
        f"{prints}    return 0;\n}}\n",
    )
    measured = dict(line.split() for line in out.splitlines())
    assert int(measured.pop("sizeof")) == ffi.sizeof("coextra_table")
    for name in fields:
        assert int(measured[name]) == ffi.offsetof("coextra_table", name), (
            f"offset of coextra_table.{name} differs from the C compiler"
        )


@needs_cc
def test_constants_match_c_compiler(tmp_path: Path) -> None:
    """Every COEXTRA_* integer macro has the value C gives it."""
    constants = cabi.abi_constants()
    assert "COEXTRA_ABI_VERSION" in constants
    assert len([c for c in constants if c.startswith("COEXTRA_CAP_")]) == (
        len(Capability) - len(cabi.NO_ABI_BIT)
    )
    prints = "".join(
        f'    printf("{name} %lu\\n", (unsigned long)({name}));\n'
        for name in constants
    )
    out = _compile_and_run(
        tmp_path,
        '#include <stdio.h>\n#include "coextra_abi.h"\n'
        f"int main(void) {{\n{prints}    return 0;\n}}\n",
    )
    measured = {k: int(v) for k, v in (ln.split() for ln in out.splitlines())}
    assert measured == constants


def test_inline_flag_constant_matches_adapter() -> None:
    """The header and adapter.py agree on CO_INLINE_EXTRA."""
    assert cabi.abi_constants()["COEXTRA_CO_INLINE_EXTRA"] == CO_INLINE_EXTRA


# -- loading -------------------------------------------------------------


def test_load_library_reads_name_and_capabilities(
    impl: cabi.TableImplementation,
) -> None:
    """Name, in-process flag and capability bits come from the table."""
    assert impl.name == "reference"
    assert impl.in_process is True
    assert impl.capabilities == frozenset(Capability) - {
        Capability.PYTHON_CODE,
        Capability.NATIVE_THREADS,
    }


def test_load_library_missing_file(tmp_path: Path) -> None:
    """A missing library is a LoadError, not an OSError."""
    with pytest.raises(cabi.LoadError, match="cannot load"):
        cabi.load_library(str(tmp_path / "nothing.so"))


@needs_cc
def test_load_library_without_symbol(tmp_path: Path) -> None:
    """A library without coextra_get_table is refused by name."""
    src = tmp_path / "empty.c"
    src.write_text("int unrelated(void) { return 0; }\n", encoding="utf-8")
    lib = tmp_path / "libempty.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True
    )
    with pytest.raises(cabi.LoadError, match="coextra_get_table"):
        cabi.load_library(str(lib))


def _copy_table(impl: cabi.TableImplementation, **changes: int) -> Any:
    ffi = cabi.abi_ffi()
    copy = ffi.new("coextra_table *")
    ffi.memmove(copy, impl._table, ffi.sizeof("coextra_table"))
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy


def test_version_mismatch_names_both_versions_and_fix(
    impl: cabi.TableImplementation,
) -> None:
    """A version mismatch is one line naming both versions and the fix."""
    ffi = cabi.abi_ffi()
    table = _copy_table(impl, abi_version=99)
    address = int(ffi.cast("uintptr_t", table))
    with pytest.raises(cabi.LoadError) as info:
        cabi.from_table_address(address, keepalive=table)
    message = str(info.value)
    assert "\n" not in message
    assert "99" in message
    assert str(cabi.abi_constants()["COEXTRA_ABI_VERSION"]) in message
    assert "rebuild" in message


def test_size_mismatch_is_refused(impl: cabi.TableImplementation) -> None:
    """A table of the wrong size is refused."""
    ffi = cabi.abi_ffi()
    table = _copy_table(impl, size=8)
    with pytest.raises(cabi.LoadError, match="size 8"):
        cabi.from_table_address(int(ffi.cast("uintptr_t", table)), table)


def test_table_of_older_minor_version_loads_without_new_entries(
    impl: cabi.TableImplementation,
) -> None:
    """A 1.0 table (shorter, same major version) loads; 1.1 entries absent.

    Minor versions only append entries, so a library built against ABI
    1.0 keeps working and simply lacks compare_exchange_extra.
    """
    ffi = cabi.abi_ffi()
    assert Capability.COMPARE_EXCHANGE in impl.capabilities
    old_size = ffi.offsetof("coextra_table", "compare_exchange_extra")
    bits = cabi.abi_constants()
    newer = (
        bits["COEXTRA_CAP_COMPARE_EXCHANGE"] | bits["COEXTRA_CAP_LIVE_BLOCKS"]
    )
    # A 1.0 library knows neither bit of the later minor versions.
    old_caps = int(impl._table.capabilities) & ~newer
    table = _copy_table(impl, size=old_size, capabilities=old_caps)
    loaded = cabi.from_table_address(int(ffi.cast("uintptr_t", table)), table)
    assert Capability.COMPARE_EXCHANGE not in loaded.capabilities
    assert Capability.HOOKS in loaded.capabilities
    # A table of a newer minor version than the suite's loads as well.
    newer_table = _copy_table(impl, size=ffi.sizeof("coextra_table") + 8)
    cabi.from_table_address(
        int(ffi.cast("uintptr_t", newer_table)), newer_table
    )


def test_undeclared_capability_raises_not_implemented(
    impl: cabi.TableImplementation,
) -> None:
    """Methods of undeclared capabilities raise NotImplementedError."""
    ffi = cabi.abi_ffi()
    table = _copy_table(impl, capabilities=0)
    limited = cabi.from_table_address(
        int(ffi.cast("uintptr_t", table)), keepalive=(table, impl)
    )
    assert limited.capabilities == {Capability.PENDING_ERROR}
    s = limited.open_session()
    try:
        index = s.request_index(s.main, None)
        with pytest.raises(NotImplementedError):
            s.release_index(s.main, index)
        with pytest.raises(NotImplementedError):
            s.add_hook(s.main, Hook(0))
        with pytest.raises(NotImplementedError):
            s.new_interpreter()
    finally:
        s.close()


def test_reference_package_entry_point() -> None:
    """The installed coextra_reference package gives a working session."""
    ref = pytest.importorskip("coextra_reference")
    impl = ref.implementation()
    assert impl.name == "reference"
    s = impl.open_session()
    try:
        assert isinstance(s, Session)
        code = s.new_code(s.main)
        assert s.extra_bytes(code) == 0
    finally:
        s.close()


# -- the session over the table ------------------------------------------


def test_session_is_a_session(session: cabi.TableSession) -> None:
    """The session satisfies the Session protocol."""
    assert isinstance(session, Session)


def test_errors_carry_pep_name_and_class(session: cabi.TableSession) -> None:
    """ApiError names the PEP function and the exception class."""
    code = session.new_code(session.main)
    with pytest.raises(ApiError) as info:
        session.get_extra(session.main, code, 3)
    assert info.value.function == "PyUnstable_Code_GetExtra"
    assert info.value.exc_type == "SystemError"
    other = session.new_non_code(session.main)
    index = session.request_index(session.main, None)
    with pytest.raises(ApiError) as info:
        session.set_extra(session.main, other, index, 1)
    assert info.value.function == "PyUnstable_Code_SetExtra"
    with pytest.raises(ApiError) as info:
        session.remove_hook(session.main, 12345)
    assert info.value.exc_type == "ValueError"
    assert session.pending_error() is None


def test_get_extra_on_error_reports_cleared_output(
    session: cabi.TableSession,
) -> None:
    """get_extra_on_error returns the class and the output word."""
    code = session.new_code(session.main)
    assert session.get_extra_on_error(session.main, code, -1) == (
        "SystemError",
        0,
    )
    index = session.request_index(session.main, None)
    with pytest.raises(AssertionError):
        session.get_extra_on_error(session.main, code, index)


def test_values_round_trip_all_bit_patterns(
    session: cabi.TableSession,
) -> None:
    """Opaque words of every width survive the cffi casts."""
    index = session.request_index(session.main, None)
    code = session.new_code(session.main)
    for value in (1, 3, 2**63, 2**64 - 1, 0xDEADBEEF):
        session.set_extra(session.main, code, index, value)
        assert session.get_extra(session.main, code, index) == value


def test_free_calls_are_recorded_per_tag(session: cabi.TableSession) -> None:
    """Each tag's free function records into the session's log."""
    m = session.main
    i = session.request_index(m, FreeFunc(0))
    j = session.request_index(m, FreeFunc(1))
    code = session.new_code(m)
    session.set_extra(m, code, j, 20)
    session.set_extra(m, code, i, 10)
    session.set_extra(m, code, i, 11)
    assert session.take_free_calls() == [FreeCall(0, 10)]
    session.drop(code)
    assert session.take_free_calls() == [FreeCall(0, 11), FreeCall(1, 20)]


def test_free_actions_report_results(session: cabi.TableSession) -> None:
    """GET, SET and NEW_CODE free actions report result and error."""
    m = session.main
    other = session.new_code(m)
    spare = session.request_index(m, None)
    session.set_extra(m, other, spare, 77)
    get = session.request_index(
        m, FreeFunc(2, FreeAction.GET, code=other, index=spare)
    )
    code = session.new_code(m)
    session.set_extra(m, code, get, 5)
    session.set_extra(m, code, get, 0)
    assert session.take_free_calls() == [FreeCall(2, 5, result=77)]
    bad = session.request_index(
        m, FreeFunc(3, FreeAction.SET, code=other, index=200, value=1)
    )
    session.set_extra(m, code, bad, 6)
    session.set_extra(m, code, bad, 0)
    assert session.take_free_calls() == [
        FreeCall(3, 6, result=None, error="SystemError")
    ]
    new = session.request_index(m, FreeFunc(4, FreeAction.NEW_CODE))
    session.set_extra(m, code, new, 7)
    session.set_extra(m, code, new, 0)
    assert session.take_free_calls() == [FreeCall(4, 7, result=0)]


def test_hooks_record_and_act(session: cabi.TableSession) -> None:
    """Hooks record their calls, fail as unraisable and store values."""
    m = session.main
    index = session.request_index(m, FreeFunc(5))
    session.add_hook(m, Hook(1))
    session.add_hook(m, Hook(2, HookAction.FAIL))
    session.add_hook(m, Hook(3, HookAction.SET_EXTRA, index=index, value=9))
    code = session.new_code(m)
    cid = session.code_id(code)
    assert [(c.tag, c.code_id) for c in session.take_hook_calls()] == [
        (1, cid),
        (2, cid),
        (3, cid),
    ]
    assert session.take_unraisable() == ["RuntimeError"]
    assert session.get_extra(m, code, index) == 9


def test_hook_new_code_runs_once_per_construction(
    session: cabi.TableSession,
) -> None:
    """The NEW_CODE guard stops recursion after one level."""
    m = session.main
    session.add_hook(m, Hook(1, HookAction.NEW_CODE))
    session.add_hook(m, Hook(2))
    session.new_code(m)
    calls = session.take_hook_calls()
    # Outer code object: hook 1 builds an inner one, which passes through
    # the whole chain (hook 1's guard stops the recursion) before hook 2
    # sees the outer one.
    assert [c.tag for c in calls] == [1, 1, 2, 2]
    assert calls[0].code_id == calls[3].code_id
    assert calls[1].code_id == calls[2].code_id != calls[0].code_id


def test_nested_and_copies(session: cabi.TableSession) -> None:
    """Nested handles, replace and marshal copies keep flags."""
    m = session.main
    code = session.new_code(m, nested=3, flags=0x20)
    inner = session.nested(code)
    assert len(inner) == 3
    assert len({session.code_id(c) for c in inner}) == 3
    for how in ("replace", "marshal"):
        copy = session.copy_code(m, code, how)
        assert session.co_flags(copy) == 0x20
        assert len(session.nested(copy)) == 3
    with pytest.raises(ValueError, match="copy mode"):
        session.copy_code(m, code, "deepcopy")


def test_flag_cannot_be_forged(session: cabi.TableSession) -> None:
    """CO_INLINE_EXTRA passed by the caller is dropped."""
    code = session.new_code(session.main, flags=CO_INLINE_EXTRA | 1)
    assert session.co_flags(code) == 1
    assert not session.has_inline_extra(code)


def test_failed_set_keeps_value(session: cabi.TableSession) -> None:
    """A Set failing for memory changes nothing and frees nothing."""
    m = session.main
    # Built before any index exists: no inline storage, so Set must
    # allocate out of line.
    code = session.new_code(m)
    index = session.request_index(m, FreeFunc(6))
    session.set_extra(m, code, index, 1)
    later = session.request_index(m, FreeFunc(6))
    session.fail_allocations(0, 1)
    with pytest.raises(ApiError) as info:
        session.set_extra(m, code, later, 2)
    assert info.value.exc_type == "MemoryError"
    assert session.get_extra(m, code, index) == 1
    assert session.get_extra(m, code, later) == 0
    session.set_extra(m, code, later, 2)
    assert session.get_extra(m, code, later) == 2
    assert session.take_free_calls() == []


def test_close_releases_everything(
    impl: cabi.TableImplementation, live_blocks: Any
) -> None:
    """close() frees every value and every heap block of the session."""
    before = live_blocks()
    s = impl.open_session()
    m = s.main
    other = s.new_interpreter()
    i = s.request_index(m, FreeFunc(7))
    k = s.request_index(other, FreeFunc(8))
    s.add_hook(m, Hook(1))
    code = s.new_code(m, nested=2)
    s.set_extra(m, code, i, 1)
    s.set_extra(other, code, k, 2)
    s.nested(code)
    s.close()
    assert Counter(c.tag for c in s.take_free_calls()) == {7: 1, 8: 1}
    assert live_blocks() == before


def test_end_interpreter_twice_is_refused(session: cabi.TableSession) -> None:
    """An ended interpreter handle cannot be ended again."""
    other = session.new_interpreter()
    session.end_interpreter(other)
    with pytest.raises(ValueError, match="ended"):
        session.end_interpreter(other)


def test_threads_run_concurrently_and_lose_nothing(
    session: cabi.TableSession,
) -> None:
    """Concurrent sessions calls free every overwritten value once."""
    m = session.main
    index = session.request_index(m, FreeFunc(9))
    shared = session.new_code(m)
    rounds, workers = 300, 4
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            own = session.new_code(m)
            for n in range(1, rounds + 1):
                value = worker << 32 | n
                session.set_extra(m, own, index, value)
                assert session.get_extra(m, own, index) == value
                session.set_extra(m, shared, index, value)
            session.drop(own)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(w,)) for w in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    final = session.get_extra(m, shared, index)
    session.drop(shared)
    freed = Counter(c.value for c in session.take_free_calls())
    stored = {
        w << 32 | n for w in range(workers) for n in range(1, rounds + 1)
    }
    # Every value was stored twice (own and shared slot) and each
    # storing is freed exactly once.
    assert set(freed) == stored
    assert all(count == 2 for count in freed.values())
    assert final in stored


# -- ABI 1.1: live blocks, minor versions ------------------------------------


def test_live_blocks_entry_reads_the_library_count(
    impl: cabi.TableImplementation, live_blocks: Any
) -> None:
    """The table's live_blocks entry is the library's own count."""
    assert Capability.LIVE_BLOCKS in impl.capabilities
    s = impl.open_session()
    code = s.new_code(s.main)
    assert impl.live_blocks() == live_blocks() > 0
    s.drop(code)
    s.close()
    assert impl.live_blocks() == live_blocks()


def _minor_0_table(impl: cabi.TableImplementation, capabilities: int) -> Any:
    """Return a copy of the table cut to the size of ABI 1.0."""
    ffi = cabi.abi_ffi()
    size = ffi.offsetof("coextra_table", "live_blocks")
    return _copy_table(impl, size=size, capabilities=capabilities)


def test_minor_version_0_library_still_loads(
    impl: cabi.TableImplementation,
) -> None:
    """A library built against ABI 1.0 loads, without live-blocks."""
    ffi = cabi.abi_ffi()
    bit = cabi.abi_constants()["COEXTRA_CAP_LIVE_BLOCKS"]
    mask = int(impl._table.capabilities) & ~bit
    table = _minor_0_table(impl, mask)
    # Whatever lies past the 1.0 table must not be read.
    table.live_blocks = ffi.cast("intptr_t (*)(void)", 1)
    old = cabi.from_table_address(
        int(ffi.cast("uintptr_t", table)), keepalive=(table, impl)
    )
    assert Capability.LIVE_BLOCKS not in old.capabilities
    assert Capability.HOOKS in old.capabilities
    with pytest.raises(NotImplementedError):
        old.live_blocks()
    s = old.open_session()
    s.request_index(s.main, None)
    s.close()


def test_capability_without_its_entry_is_refused(
    impl: cabi.TableImplementation,
) -> None:
    """Declaring live-blocks in a 1.0-sized table is a one-line error."""
    ffi = cabi.abi_ffi()
    table = _minor_0_table(impl, int(impl._table.capabilities))
    with pytest.raises(cabi.LoadError, match="live_blocks") as info:
        cabi.from_table_address(int(ffi.cast("uintptr_t", table)), table)
    assert "\n" not in str(info.value)


LEAKY_WRAPPER = r"""
#include <string.h>
#include "coextra_abi.h"

const coextra_table *reference_get_table(void);

/* The reference, except that dropping a reference frees nothing. */
static void
leaky_drop(coextra_object *obj)
{
    (void)obj;
}

static coextra_table leaky;

const coextra_table *
coextra_get_table(void)
{
    memcpy(&leaky, reference_get_table(), sizeof(leaky));
    leaky.name = "leaky";
    leaky.drop = leaky_drop;
    return &leaky;
}
"""


@needs_cc
def test_suite_catches_a_leaking_c_library(tmp_path: Path) -> None:
    """The leak oracle fails the tests of a C library that leaks."""
    src = ROOT / "reference_impl" / "src"
    wrapper = tmp_path / "leaky.c"
    wrapper.write_text(LEAKY_WRAPPER, encoding="utf-8")
    library = tmp_path / "libleaky.so"
    # The reference's objects, its table function renamed; then the
    # wrapper that exports the leaking table.
    subprocess.run(
        [
            "gcc",
            "-std=c11",
            "-c",
            "-fPIC",
            "-Dcoextra_get_table=reference_get_table",
            "-I",
            str(src),
            "-I",
            str(cabi.HEADER.parent),
            *map(str, sorted(src.glob("*.c"))),
        ],
        cwd=tmp_path,
        check=True,
    )
    subprocess.run(
        [
            "gcc",
            "-std=c11",
            "-shared",
            "-fPIC",
            "-pthread",
            "-I",
            str(cabi.HEADER.parent),
            str(wrapper),
            *map(str, sorted(tmp_path.glob("*.o"))),
            "-o",
            str(library),
        ],
        check=True,
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--pyargs",
            "coextra_conformance.tests.test_store",
            f"--coextra-impl={library}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "LEAK:" in output, output[-3000:]
    verdicts = [line for line in output.splitlines() if "R-STORE-1 " in line]
    assert verdicts, output[-3000:]
    assert "fail" in verdicts[0], verdicts
