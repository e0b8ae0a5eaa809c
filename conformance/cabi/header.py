"""The C ABI header, read by cffi at run time (no compiler needed).

The declarations come from the header shipped in this package with its
preprocessor lines removed, and its integer ``COEXTRA_*`` macros are
parsed here too: one source for C and Python.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path
from typing import Any

import cffi

#: The C ABI header shipped with the package.
HEADER = Path(__file__).parent.parent / "abi" / "coextra_abi.h"

_DEFINE = re.compile(r"^\s*#\s*define\s+(COEXTRA_\w+)\s+(.+?)\s*$")
_NUMBER = re.compile(
    r"^\(?\s*(0[xX][0-9a-fA-F]+|\d+)[uUlL]*"
    r"(?:\s*<<\s*(\d+))?\s*\)?$"
)


def _header_text() -> str:
    return HEADER.read_text(encoding="utf-8")


def header_to_cdef(text: str) -> str:
    """Return the header's declarations in a form cffi's cdef accepts.

    Preprocessor lines are dropped, and so is everything under
    ``#ifdef __cplusplus`` (the ``extern "C"`` wrapper).  Comments stay:
    cffi ignores them.
    """
    out: list[str] = []
    skipping: list[bool] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            directive = stripped[1:].strip()
            if directive.startswith("if"):
                skipping.append(directive == "ifdef __cplusplus")
            elif directive.startswith("endif") and skipping:
                skipping.pop()
            elif directive.startswith("else") and skipping:
                skipping[-1] = not skipping[-1]
            continue
        if any(skipping):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def abi_constants(text: str | None = None) -> dict[str, int]:
    """Return the integer ``COEXTRA_*`` macros of the header.

    ``text`` is header source to parse instead of the shipped header.
    """
    if text is None:
        return dict(_shipped_constants())
    constants: dict[str, int] = {}
    for line in text.splitlines():
        match = _DEFINE.match(line)
        if match is None:
            continue
        number = _NUMBER.match(match.group(2))
        if number is None:
            continue
        value = int(number.group(1), 0)
        if number.group(2) is not None:
            value <<= int(number.group(2))
        constants[match.group(1)] = value
    return constants


@functools.cache
def _shipped_constants() -> dict[str, int]:
    return abi_constants(_header_text())


_FFI: cffi.FFI | None = None
_FFI_LOCK = threading.Lock()


def abi_ffi() -> cffi.FFI:
    """Return the process-wide FFI holding the ABI declarations."""
    global _FFI
    with _FFI_LOCK:
        if _FFI is None:
            ffi = cffi.FFI()
            ffi.cdef(header_to_cdef(_header_text()))
            _FFI = ffi
        return _FFI


def text(chars: Any) -> str:
    """Return a C string (``char *`` or ``char[]``) as str."""
    raw = abi_ffi().string(chars)
    return raw.decode() if isinstance(raw, bytes) else raw
