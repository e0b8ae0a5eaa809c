"""Write the contract's names into code that cannot import the suite.

Usage::

    python tools/gen_contract_copies.py            # rewrite the blocks
    python tools/gen_contract_copies.py --check    # exit 1 if one is stale

The stock CPython worker (``implementations/cpython/worker/worker.py``)
runs inside the interpreter under test, CPython 3.6 or later, where the
suite's package is not installed and its syntax would not even parse.  It
carries the names of the PEP's C functions in a block between
``# BEGIN GENERATED: contract`` and ``# END GENERATED: contract``,
written here from ``conformance/contract.py``, the one place they are
defined.
``meta_tests/test_contract.py`` fails while a block is stale.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "conformance" / "contract.py"
#: Files holding a generated copy of the contract's names.
TARGETS = (ROOT / "implementations" / "cpython" / "worker" / "worker.py",)

BEGIN = "# BEGIN GENERATED: contract"
END = "# END GENERATED: contract"
_BLOCK = re.compile(
    rf"^{re.escape(BEGIN)}\n.*?^{re.escape(END)}\n", re.DOTALL | re.MULTILINE
)

#: The module-level names of the contract copied, in this order.
C_NAME_CONSTANTS = (
    "REQUEST",
    "RELEASE",
    "GET",
    "SET",
    "COMPARE_EXCHANGE",
    "ADD_HOOK",
    "REMOVE_HOOK",
    "HAS_INLINE",
    "CONSTRUCT",
)


def contract_values(source: str) -> dict[str, str]:
    """Return the copied constants of the contract source.

    The contract is read, not imported, so that this tool needs neither
    the package installed nor its dependencies.
    """
    tree = ast.parse(source)
    values: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in C_NAME_CONSTANTS
        ):
            values[node.targets[0].id] = str(ast.literal_eval(node.value))
    missing = [name for name in C_NAME_CONSTANTS if name not in values]
    if missing:
        raise SystemExit(
            f"{CONTRACT.relative_to(ROOT)}: no {', '.join(missing)}; "
            f"update C_NAME_CONSTANTS in this tool"
        )
    return {name: values[name] for name in C_NAME_CONSTANTS}


def render(values: dict[str, str]) -> str:
    """Return the generated block, markers included (plain 3.6 Python)."""
    lines = [
        BEGIN,
        "# Copied from conformance/contract.py, which this interpreter",
        "# cannot import; do not edit: python tools/gen_contract_copies.py",
    ]
    lines += [
        f"{name} = {json.dumps(value)}" for name, value in values.items()
    ]
    lines.append(END)
    return "\n".join(lines) + "\n"


def refresh(text: str, block: str, path: Path) -> str:
    """Return ``text`` with its generated block replaced by ``block``."""
    if len(_BLOCK.findall(text)) != 1:
        raise SystemExit(
            f"{path.relative_to(ROOT)}: needs exactly one block from "
            f"'{BEGIN}' to '{END}'; add the two marker lines"
        )
    return _BLOCK.sub(lambda _: block, text)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the blocks, or with --check report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a block is stale"
    )
    args = parser.parse_args(argv)
    block = render(contract_values(CONTRACT.read_text(encoding="utf-8")))
    stale = []
    for path in TARGETS:
        text = path.read_text(encoding="utf-8")
        new = refresh(text, block, path)
        if new == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(
            f"stale contract copy in {', '.join(map(str, stale))}; run "
            f"python tools/gen_contract_copies.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
