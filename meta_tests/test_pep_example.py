"""The PEP's "How to Teach This" example compiles and runs.

``pep/pep-9999/call_counter.c`` is the consumer the PEP shows (through
``literalinclude``).  It is compiled unchanged against the reference
implementation, with ``fixtures/pep_example/Python.h`` standing in for the
few CPython functions it uses, and run by ``fixtures/pep_example/driver.c``
in two interpreters with several threads each.  When the patched CPython
3.13.15 builds are cached (``implementations/cpython-3.13/build.py``), it
is also built as a real extension module and run on them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO / "pep" / "pep-9999"
EXAMPLE = EXAMPLE_DIR / "call_counter.c"
MODULE = EXAMPLE_DIR / "call_counter_module.c"
SHIM = Path(__file__).resolve().parent / "fixtures" / "pep_example"
REFERENCE_SRC = REPO / "reference_impl" / "src"
PEP = REPO / "pep" / "pep-9999.rst"

CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="needs a C compiler")

#: The patched builds, by cache variant, and their interpreter's name.
PATCHED = {"patched": "python3.13", "patched-ft": "python3.13t"}


def _build_driver(example_dir: Path, out: Path) -> Path:
    """Compile the driver with the example found in ``example_dir``."""
    assert CC is not None
    command = [
        CC,
        "-std=gnu11",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
        "-I",
        str(SHIM),
        "-I",
        str(REFERENCE_SRC),
        "-I",
        str(example_dir),
        "-o",
        str(out),
        str(SHIM / "driver.c"),
        # The library without table.c, its C-ABI export.
        *(
            str(path)
            for path in sorted(REFERENCE_SRC.glob("*.c"))
            if path.name != "table.c"
        ),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out


@needs_cc
def test_example_runs_on_the_reference(tmp_path: Path) -> None:
    """Two interpreters, four threads each: every call counted once."""
    driver = _build_driver(EXAMPLE_DIR, tmp_path / "driver")
    done = subprocess.run(
        [str(driver)], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stdout


@needs_cc
def test_driver_catches_a_get_or_create_race(tmp_path: Path) -> None:
    """The same consumer with Get + Set instead of CompareExchange fails.

    This is the race the PEP's first example had on free-threaded builds;
    the driver must notice it, or its pass above proves nothing.
    """
    source = EXAMPLE.read_text(encoding="utf-8")
    racy = re.sub(
        r"        int stored = PyUnstable_Code_CompareExchangeExtra\(.*?"
        r"(?=    /\* Counters are never replaced)",
        "        if (PyUnstable_Code_SetExtra(code, state->calls_index, "
        "fresh) < 0) {\n"
        "            PyMem_RawFree(fresh);\n"
        "            return -1;\n"
        "        }\n"
        "        counter = fresh;\n"
        "    }\n",
        source,
        flags=re.S,
    )
    assert racy != source, "the example no longer has the expected shape"
    (tmp_path / "call_counter.c").write_text(racy, encoding="utf-8")
    driver = _build_driver(tmp_path, tmp_path / "driver")
    done = subprocess.run(
        [str(driver)], capture_output=True, text=True, timeout=120
    )
    # The race shows as a miscount, or, when a replaced counter is freed
    # while another thread still increments it, as a crash of the heap.
    if done.returncode < 0:
        return
    assert done.returncode == 1, (
        f"the driver did not catch the racy consumer: {done.stdout}"
    )
    assert "calls counted" in done.stdout


def test_pep_includes_the_example() -> None:
    """The PEP shows the part between the example's markers."""
    text = PEP.read_text(encoding="utf-8")
    assert ".. literalinclude:: pep-9999/call_counter.c" in text
    source = EXAMPLE.read_text(encoding="utf-8")
    start = source.index("/* BEGIN: consumer */")
    end = source.index("/* END: consumer */")
    shown = source[start:end]
    for needed in (
        "PyUnstable_Code_CompareExchangeExtra",
        "PyModule_GetState",
        "PyUnstable_Eval_ReleaseCodeExtraIndex",
    ):
        assert needed in shown, f"the example shown lacks {needed}"
    assert "static Py_ssize_t" not in shown, (
        "the index must live in the module state, not in a static"
    )


def _cached_interpreter(variant: str) -> Path | None:
    """Return the interpreter of a complete cached build, or None."""
    cache = Path(
        os.environ.get("COEXTRA_CACHE", Path.home() / ".cache" / "coextra")
    )
    vdir = cache / "cpython-3.13" / variant
    python = vdir / "install" / "bin" / PATCHED[variant]
    if (vdir / "stamp").is_file() and python.is_file():
        return python
    return None


_THREADED_COUNT = """
import threading
import call_counter

codes = [compile(f"x = {i}", f"<code {i}>", "exec") for i in range(64)]
THREADS, ROUNDS = 4, 200
barrier = threading.Barrier(THREADS)

def work():
    barrier.wait()
    for _ in range(ROUNDS):
        for code in codes:
            call_counter.count(code)

threads = [threading.Thread(target=work) for _ in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
wrong = [n for n, c in enumerate(codes)
         if call_counter.calls(c) != THREADS * ROUNDS]
assert not wrong, f"codes {wrong[:5]} miscounted"
print("ok")
"""


@needs_cc
@pytest.mark.parametrize("variant", sorted(PATCHED))
def test_example_runs_on_patched_cpython(variant: str, tmp_path: Path) -> None:
    """The example as an extension module on a patched 3.13.15 build."""
    python = _cached_interpreter(variant)
    if python is None:
        pytest.skip(
            f"the {variant} CPython 3.13.15 build is not cached; build it "
            f"with implementations/cpython-3.13/build.py --variant {variant}"
        )
    paths = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['include']); "
            "print(sysconfig.get_config_var('EXT_SUFFIX'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    include, suffix = paths[0], paths[1]
    assert CC is not None
    subprocess.run(
        [
            CC,
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-Werror",
            "-I",
            include,
            "-I",
            str(EXAMPLE_DIR),
            "-o",
            str(tmp_path / f"call_counter{suffix}"),
            str(MODULE),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    done = subprocess.run(
        [str(python), "-c", _THREADED_COUNT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), (
        done.stdout + done.stderr
    )
