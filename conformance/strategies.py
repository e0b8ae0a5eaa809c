"""Hypothesis strategies of the suite.

The settings profiles (``ci``, ``explore``) belong to the plugin and are
chosen with ``--coextra-hypothesis-profile``; :func:`stateful_settings`
adapts the active one for the differential state machine.
"""

from __future__ import annotations

from hypothesis import Phase, settings
from hypothesis import strategies as st

from .contract import WORD_BITS, FreeFunc, HookAction


def stateful_settings() -> settings:
    """Return the active profile, without shrinking if derandomized.

    A derandomized (CI) run reports the failing sequence as found:
    shrinking a broken implementation's failure can take minutes.  The
    explore profile keeps shrinking, to give a minimal sequence.
    """
    active = settings.default
    if active is None or not active.derandomize:
        return settings(active)
    return settings(
        active, phases=[Phase.explicit, Phase.reuse, Phase.generate]
    )


def opaque_values() -> st.SearchStrategy[int]:
    """Generate non-NULL words: the patterns consumers use, and others."""
    top = 2**WORD_BITS - 1
    return st.one_of(
        st.sampled_from([1, 2, 3, 0x7F, 2 ** (WORD_BITS - 1), top]),
        st.integers(min_value=1, max_value=top),
    )


def free_funcs() -> st.SearchStrategy[FreeFunc | None]:
    """Generate a NULL free function or a recording one (tags 0-3)."""
    return st.one_of(st.none(), st.builds(FreeFunc, tag=st.integers(0, 3)))


def hook_actions() -> st.SearchStrategy[HookAction]:
    """Generate what a hook does when called."""
    return st.sampled_from(
        [
            HookAction.RECORD,
            HookAction.RECORD,
            HookAction.FAIL,
            HookAction.SET_EXTRA,
            HookAction.NEW_CODE,
        ]
    )


def copy_kinds() -> st.SearchStrategy[str]:
    """Generate how ``copy_code`` copies."""
    return st.sampled_from(["replace", "marshal"])
