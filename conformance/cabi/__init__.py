"""Drive any library that exports the suite's C ABI (``abi/coextra_abi.h``).

The loader uses cffi in ABI mode, so no compiler is needed: the
declarations come from the header shipped in this package, read at run
time with its preprocessor lines removed (one source for C and Python).

* :func:`load_library` opens a shared library and reads its table;
* :func:`from_table_address` wraps a table that some other module already
  holds (a cffi API-mode extension such as the reference implementation).

Both return an :class:`Implementation` whose sessions implement
:class:`~.adapter.Session` over the table.  cffi releases the GIL around
every C call, so a session used from several threads really runs the
library concurrently; the Python-side state (logs, handle sets) is kept
under locks.
"""

from __future__ import annotations

from .header import HEADER, abi_constants, abi_ffi, header_to_cdef
from .implementation import NO_ABI_BIT, TableImplementation
from .loader import LoadError, from_table_address, load_library
from .session import TableSession

__all__ = [
    "HEADER",
    "NO_ABI_BIT",
    "LoadError",
    "TableImplementation",
    "TableSession",
    "abi_constants",
    "abi_ffi",
    "from_table_address",
    "header_to_cdef",
    "load_library",
]
