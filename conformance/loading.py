"""Turn the value of ``--coextra-impl`` into an :class:`Implementation`.

Three spellings are accepted, tried in this order:

* a path to a shared library exporting the C ABI (it contains a path
  separator or ends in ``.so``, ``.dylib`` or ``.dll``), loaded by
  :mod:`.cabi`;
* ``module:attribute`` (the attribute may be dotted);
* a name registered in the entry-point group ``coextra.implementations``.

What the spelling names is either an Implementation or a zero-argument
callable returning one.  Every failure raises :class:`LoadError` whose
message says what is wrong and how to fix it, in one line, because the
plugin shows it to the user instead of a traceback.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from importlib.metadata import entry_points

from .adapter import Capability, Implementation

#: The entry-point group that implementations register under.
GROUP = "coextra.implementations"

LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")

#: Members an implementation must have (see adapter.Implementation).
_MEMBERS = ("name", "version", "capabilities", "in_process", "open_session")

_HOW = (
    "pass a registered name, module:attribute or a path to a shared "
    "library exporting coextra_get_table"
)


class LoadError(Exception):
    """The implementation cannot be loaded; the message is for the user."""


def available_names() -> list[str]:
    """Return the registered implementation names, sorted."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def is_library_path(spec: str) -> bool:
    """Tell whether ``spec`` names a shared library rather than a name."""
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return any(sep in spec for sep in separators) or spec.endswith(
        LIBRARY_SUFFIXES
    )


def resolve(spec: str) -> Implementation:
    """Return the implementation that ``spec`` names; see the module doc."""
    if is_library_path(spec):
        target = _load_library(spec)
    elif ":" in spec:
        target = _load_attribute(spec)
    else:
        target = _load_entry_point(spec)
    return _instantiate(spec, target)


def capabilities_of(implementation: Implementation) -> frozenset[Capability]:
    """Return the declared capabilities as Capability members.

    Plain strings equal to a capability's value are accepted, so that an
    implementation need not import the enum.
    """
    declared: object = implementation.capabilities
    if isinstance(declared, (str, bytes)) or not hasattr(declared, "__iter__"):
        raise LoadError(
            f"implementation {implementation.name!r}: capabilities must be "
            f"a set of Capability, not {type(declared).__name__}"
        )
    result = set()
    for item in declared:
        try:
            result.add(Capability(item))
        except ValueError:
            known = ", ".join(c.value for c in Capability)
            raise LoadError(
                f"implementation {implementation.name!r} declares unknown "
                f"capability {item!r}: use one of {known}"
            ) from None
    return frozenset(result)


def _load_entry_point(name: str) -> object:
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        names = ", ".join(available_names()) or "none registered"
        raise LoadError(
            f"unknown implementation {name!r}: {_HOW} (available: {names})"
        )
    entry = matches[0]
    try:
        return entry.load()
    except Exception as exc:
        raise LoadError(
            f"implementation {name!r} is registered as {entry.value!r}, "
            f"which cannot be loaded ({type(exc).__name__}: {exc}): "
            f"reinstall the package that provides it"
        ) from None


def _load_attribute(spec: str) -> object:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise LoadError(f"malformed implementation {spec!r}: {_HOW}")
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise LoadError(
                f"module {module_name!r} of {spec!r} not found: install it "
                f"or add its directory to PYTHONPATH"
            ) from None
        raise LoadError(
            f"importing module {module_name!r} of {spec!r} failed: {exc}"
        ) from None
    except Exception as exc:
        raise LoadError(
            f"importing module {module_name!r} of {spec!r} failed "
            f"({type(exc).__name__}: {exc})"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise LoadError(
                f"module {module_name!r} has no attribute {attribute!r}: "
                f"check the name after the colon in {spec!r}"
            ) from None
    return target


def _load_library(path: str) -> object:
    if not os.path.isfile(path):
        raise LoadError(
            f"shared library {path!r} not found: build it first or fix "
            f"the path"
        )
    try:
        # Imported here, not at the top: cffi is only needed for libraries.
        cabi = importlib.import_module(f"{__package__}.cabi")
    except ImportError as exc:
        raise LoadError(
            f"cannot load shared library {path!r}: the C ABI loader is "
            f"unavailable ({exc}); install cffi"
        ) from None
    load: Callable[[str], object] = cabi.load_library
    try:
        # Absolute, because dlopen searches the library path, not the
        # working directory, for a name without a slash.
        return load(os.path.abspath(path))
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise LoadError(
            f"cannot load shared library {path!r}: {message}"
        ) from None


def _is_implementation(target: object) -> bool:
    return not isinstance(target, type) and all(
        hasattr(target, member) for member in _MEMBERS
    )


def _instantiate(spec: str, target: object) -> Implementation:
    if not _is_implementation(target) and callable(target):
        try:
            target = target()
        except Exception as exc:
            raise LoadError(
                f"creating implementation {spec!r} failed "
                f"({type(exc).__name__}: {exc})"
            ) from None
    if not _is_implementation(target):
        missing = [m for m in _MEMBERS if not hasattr(target, m)]
        raise LoadError(
            f"{spec!r} gives a {type(target).__name__}, not an "
            f"Implementation (missing: {', '.join(missing)}): point it at "
            f"an object following coextra_conformance.adapter"
            f".Implementation or a function returning one"
        )
    assert isinstance(target, Implementation)
    return target
