"""Inline tox plugin: environments that run the suite on the host Python.

The environments ``py36`` ... ``py313`` test *another* interpreter: the
suite runs on the host Python and drives the target CPython out of process
(see implementations/cpython).  tox reads ``py36`` as "build this
environment with Python 3.6" and refuses a different ``base_python``; the
``host-python`` runner keeps the environment on the host interpreter while
keeping the names other tooling calls.
"""

from __future__ import annotations

from tox.plugin import impl
from tox.tox_env.python.virtual_env.runner import VirtualEnvRunner
from tox.tox_env.register import ToxEnvRegister


class HostPythonRunner(VirtualEnvRunner):
    """A virtualenv runner that ignores the Python version in the name."""

    @staticmethod
    def id() -> str:
        """Return the name used as ``runner = host-python``."""
        return "host-python"

    @classmethod
    def _validate_base_python(
        cls,
        env_name: str,
        base_pythons: list[str],
        ignore_base_python_conflict: bool,  # tox's signature
    ) -> list[str]:
        return base_pythons


@impl
def tox_register_tox_env(register: ToxEnvRegister) -> None:
    """Make the ``host-python`` runner available to tox.ini."""
    register.add_run_env(HostPythonRunner)
