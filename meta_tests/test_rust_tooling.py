"""Static checks of the Rust implementation (implementations/rust).

They read the sources only, so they run in milliseconds and need no Rust
toolchain: the crate uses the standard library alone, ``unsafe`` stays in
the modules that own the C boundary with a reason given for each block,
and the ``#[repr(C)]`` mirror of ``coextra_table`` lists the header's
fields in the header's order.  The suite itself runs against the built
library in ``tox -e rust``; when that library exists, its table is also
checked here through the suite's own loader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coextra_conformance import cabi
from coextra_conformance.adapter import Capability

ROOT = Path(__file__).resolve().parent.parent
CRATE = ROOT / "implementations" / "rust"
SOURCES = CRATE / "src"
LIBRARY = CRATE / "target" / "release" / "libcoextra_rust.so"

#: The modules allowed to contain unsafe code: they own the raw memory
#: and the calls that cross the C ABI.
BOUNDARY = {"blocks.rs", "callbacks.rs", "ffi.rs", "object.rs"}

#: How far above an unsafe block its SAFETY comment may start.
SAFETY_WINDOW = 4


def _rust_files() -> list[Path]:
    return sorted(SOURCES.glob("*.rs"))


def _code_lines(path: Path) -> list[str]:
    """Return the file's lines with // comments and strings blanked."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
        lines.append(line.split("//", 1)[0])
    return lines


def _manifest_tables() -> dict[str, list[str]]:
    """Return Cargo.toml's tables as name -> non-empty, non-comment lines.

    Cargo.toml is read by hand: tomllib is not in Python 3.10.
    """
    tables: dict[str, list[str]] = {"": []}
    current = ""
    for line in (CRATE / "Cargo.toml").read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            current = line.strip("[]")
            tables[current] = []
        elif line:
            tables[current].append(line)
    return tables


def test_crate_has_no_dependencies() -> None:
    """Only the standard library: no crate registry is reachable."""
    tables = _manifest_tables()
    for table in ("dependencies", "dev-dependencies", "build-dependencies"):
        assert not tables.get(table), f"[{table}] must stay empty"
    assert any("cdylib" in line for line in tables["lib"])


def test_unsafe_code_is_denied_outside_the_boundary() -> None:
    """lib.rs denies unsafe code; only the boundary modules allow it."""
    lib = (SOURCES / "lib.rs").read_text("utf-8")
    assert "#![deny(unsafe_code)]" in lib
    for path in _rust_files():
        code = "\n".join(_code_lines(path))
        allows = "#![allow(unsafe_code)]" in code
        uses = re.search(r"\bunsafe\b", code.replace("unsafe_code", ""))
        if path.name in BOUNDARY:
            assert allows, f"{path.name} must opt in to unsafe code"
        else:
            assert not allows, f"{path.name} must not allow unsafe code"
            assert uses is None, f"{path.name} uses unsafe code"


def _crate_imports(path: Path) -> set[str]:
    """Return the crate modules a file's code (tests excluded) names."""
    code = "\n".join(_code_lines(path)).split("#[cfg(test)]", 1)[0]
    return set(re.findall(r"\bcrate::(\w+)", code)) - {path.stem}


def test_modules_import_each_other_without_a_circle() -> None:
    """The modules form layers: no module reaches itself through imports."""
    graph = {path.stem: _crate_imports(path) for path in _rust_files()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for name in graph.get(start, set()) - seen:
            seen.add(name)
            if name == goal or reaches(name, goal, seen):
                return True
        return False

    circular = sorted(name for name in graph if reaches(name, name, set()))
    assert not circular, f"modules in an import circle: {circular}"


@pytest.mark.parametrize("name", sorted(BOUNDARY))
def test_every_unsafe_block_says_why_it_is_sound(name: str) -> None:
    """Each ``unsafe {`` or ``unsafe impl`` has a SAFETY comment above."""
    raw = (SOURCES / name).read_text("utf-8").splitlines()
    code = _code_lines(SOURCES / name)
    missing = []
    for number, line in enumerate(code):
        if not re.search(r"\bunsafe\s*(\{|impl\b)", line):
            continue
        window = raw[max(0, number - SAFETY_WINDOW) : number + 1]
        if not any("SAFETY:" in above for above in window):
            missing.append(number + 1)
    assert not missing, f"{name}: unsafe without a SAFETY comment: {missing}"


def _header_fields() -> list[str]:
    text = cabi.header_to_cdef(cabi.HEADER.read_text("utf-8"))
    body = text[text.index("typedef struct coextra_table {") :]
    body = body[: body.index("} coextra_table;")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    fields = []
    for declaration in body.split(";")[:-1]:
        declaration = " ".join(declaration.split())
        pointer = re.search(r"\(\s*\*\s*(\w+)\s*\)", declaration)
        if pointer is not None:
            fields.append(pointer.group(1))
        else:
            fields.append(declaration.split()[-1].lstrip("*"))
    return fields


def _rust_fields() -> list[str]:
    source = (SOURCES / "ffi.rs").read_text("utf-8")
    body = source[source.index("pub struct Table {") :]
    body = body[: body.index("\n}")]
    return re.findall(r"^\s*pub (\w+):", body, flags=re.M)


def test_table_mirror_follows_the_header() -> None:
    """The Rust struct has the header's fields in the header's order."""
    header = _header_fields()
    assert header[:3] == ["abi_version", "size", "name"], header
    assert _rust_fields() == header


@pytest.mark.skipif(
    not LIBRARY.exists(), reason="libcoextra_rust.so is not built"
)
def test_built_library_declares_every_capability() -> None:
    """The suite's loader accepts the table with every ABI capability."""
    implementation = cabi.load_library(str(LIBRARY))
    assert implementation.name == "rust"
    # The ABI has no Python-level code objects and no native-thread loop.
    assert implementation.capabilities == frozenset(Capability) - {
        Capability.PYTHON_CODE,
        Capability.NATIVE_THREADS,
    }
