# Type stub of the cffi extension module built by coextra_build.py.
from typing import Any

ffi: Any
lib: Any
