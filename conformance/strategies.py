"""Hypothesis strategies and settings profiles of the suite.

Profiles: ``coextra-default`` is derandomized, small and does not shrink,
so that a run takes seconds and gives the same verdict every time;
``coextra-explore`` searches long and at random, and shrinks failures to
a minimal sequence.  Select one with the
environment variable ``COEXTRA_HYPOTHESIS_PROFILE`` (``default`` or
``explore``).  Neither writes an example database: the suite runs in
implementers' trees and must leave nothing behind.
"""

from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from .adapter import FreeFunc, HookAction

#: Pointer-sized words in this process.
WORD_BITS = 64 if sys.maxsize > 2**32 else 32

PROFILE_VARIABLE = "COEXTRA_HYPOTHESIS_PROFILE"

settings.register_profile(
    "coextra-default",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=30,
    stateful_step_count=40,
    # Shrinking a failure of a broken implementation can take minutes;
    # the explore profile shrinks.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "coextra-explore",
    derandomize=False,
    database=None,
    deadline=None,
    max_examples=2000,
    stateful_step_count=100,
    suppress_health_check=[HealthCheck.too_slow],
)


def profile() -> settings:
    """Return the profile named by ``COEXTRA_HYPOTHESIS_PROFILE``."""
    name = os.environ.get(PROFILE_VARIABLE, "default")
    if name not in ("default", "explore"):
        raise ValueError(
            f"{PROFILE_VARIABLE} must be 'default' or 'explore', not {name!r}"
        )
    return settings.get_profile(f"coextra-{name}")


def opaque_values() -> st.SearchStrategy[int]:
    """Non-NULL words: the patterns consumers use, and any others."""
    top = 2**WORD_BITS - 1
    return st.one_of(
        st.sampled_from([1, 2, 3, 0x7F, 2 ** (WORD_BITS - 1), top]),
        st.integers(min_value=1, max_value=top),
    )


def free_funcs() -> st.SearchStrategy[FreeFunc | None]:
    """A NULL free function or a recording one (tags 0-3)."""
    return st.one_of(st.none(), st.builds(FreeFunc, tag=st.integers(0, 3)))


def hook_actions() -> st.SearchStrategy[HookAction]:
    """What a generated hook does when called."""
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
    """How ``copy_code`` copies."""
    return st.sampled_from(["replace", "marshal"])
