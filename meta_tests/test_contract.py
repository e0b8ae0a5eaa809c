"""The contract is defined once: in ``conformance/contract.py``.

These tests read every Python file of the repository (as syntax trees,
running none) and fail when one of them defines again what the contract
module defines: a name of the PEP's C functions, a constant, the list of
report outcomes, or a dispatch on the recording actions.  The one
sanctioned copy, the generated block of the stock CPython worker, must
match what ``tools/gen_contract_copies.py`` writes.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from coextra_conformance import contract

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "conformance" / "contract.py"
WORKER = ROOT / "implementations" / "cpython" / "worker" / "worker.py"

#: Folders never read: caches, builds and environments.
SKIPPED_DIRS = frozenset(
    {".git", ".tox", ".venv", "build", "_build", "target", "node_modules"}
)

#: Names only the contract module assigns.
CONSTANT_NAMES = frozenset(
    {
        "CO_INLINE_EXTRA",
        "MIN_INDICES",
        "MIN_CONSTRUCTOR_HOOKS",
        "WORD_BITS",
        "NUM_FREE_TAGS",
    }
)
C_NAMES = frozenset(contract.C_NAMES.values())
ACTION_ENUMS = ("FreeAction", "HookAction")

#: Copies that live outside the suite's package and cannot import it
#: yet, with the reason; each must still exist (a stale entry fails).
KNOWN_COPIES = {
    # The docs extension validates reports without the suite installed.
    ("docs/_ext/coextra_docs/reports.py", "outcome list"),
    # The stock API's symbols by CPython version, looked up with ctypes.
    ("benchmarks/test_bench_python.py", "table of C names"),
    # The adapter guide's example, read top to bottom by implementers:
    # it spells out the actions of its recording free functions.
    ("docs/examples/minimal_adapter.py", "action dispatch"),
}


def _load_tool() -> ModuleType:
    path = ROOT / "tools" / "gen_contract_copies.py"
    spec = importlib.util.spec_from_file_location("gen_contract_copies", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_files() -> Iterator[Path]:
    """Yield the repository's Python files but the contract module."""
    stack = [ROOT]
    while stack:
        folder = stack.pop()
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                if path.name not in SKIPPED_DIRS:
                    stack.append(path)
            elif path.suffix == ".py" and path != CONTRACT:
                yield path


def _strings(node: ast.AST) -> list[str]:
    """Return the string constants that are elements of a literal."""
    if isinstance(node, ast.Dict):
        items = [k for k in node.keys if k is not None] + node.values
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = list(node.elts)
    else:
        return []
    return [
        item.value
        for item in items
        if isinstance(item, ast.Constant) and isinstance(item.value, str)
    ]


def _generated_lines(text: str) -> range:
    """Return the line numbers of the generated contract block, if any."""
    lines = text.splitlines()
    tool = _load_tool()
    if tool.BEGIN in lines and tool.END in lines:
        return range(lines.index(tool.BEGIN) + 1, lines.index(tool.END) + 2)
    return range(0)


def copies_in(source: str) -> Iterator[tuple[int, str, str]]:
    """Yield (line, kind, what) for each copy of the contract in source."""
    tree = ast.parse(source)
    generated = _generated_lines(source)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if line in generated:
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [node.target]
            )
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            value = node.value
            if isinstance(value, ast.Constant) and value.value in C_NAMES:
                yield line, "C name", f"{names} = {value.value!r}"
            for name in names:
                plain = isinstance(value, (ast.Name, ast.Attribute))
                if name in CONSTANT_NAMES and not plain:
                    yield line, "constant", name
        found = set(_strings(node))
        if len(found & C_NAMES) >= 3:
            yield line, "table of C names", ", ".join(sorted(found & C_NAMES))
        if not isinstance(node, ast.Dict) and set(contract.OUTCOMES) <= found:
            yield line, "outcome list", "every report outcome"
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                if (
                    isinstance(operand, ast.Attribute)
                    and isinstance(operand.value, ast.Name)
                    and operand.value.id in ACTION_ENUMS
                ):
                    what = f"{operand.value.id}.{operand.attr}"
                    yield line, "action dispatch", what
        if isinstance(node, ast.ClassDef) and (
            node.name in ACTION_ENUMS or node.name == "ApiError"
        ):
            yield line, "contract class", node.name


def test_no_second_copy_of_the_contract() -> None:
    """No file but the contract module defines what it defines."""
    found = []
    seen_known = set()
    for path in python_files():
        relative = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        for line, kind, what in copies_in(text):
            if (relative, kind) in KNOWN_COPIES:
                seen_known.add((relative, kind))
                continue
            found.append(f"{relative}:{line}: {kind}: {what}")
    assert not found, (
        "defined again outside conformance/contract.py; import it from "
        "there (code that cannot import it gets a generated block, see "
        "tools/gen_contract_copies.py):\n" + "\n".join(found)
    )
    assert seen_known == KNOWN_COPIES, (
        f"KNOWN_COPIES lists copies that are gone: "
        f"{sorted(KNOWN_COPIES - seen_known)}; remove them from the list"
    )


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ('GET = "PyUnstable_Code_GetExtra"', "C name"),
        ("WORD_BITS = 64", "constant"),
        (
            "NAMES = {'a': 'PyUnstable_Code_GetExtra', "
            "'b': 'PyUnstable_Code_SetExtra', "
            "'c': 'PyUnstable_Eval_RequestCodeExtraIndex'}",
            "table of C names",
        ),
        (f"OUT = {list(contract.SUMMARY_ORDER)!r}", "outcome list"),
        (
            "if spec.action is FreeAction.GET:\n    pass",
            "action dispatch",
        ),
        ("class HookAction:\n    pass", "contract class"),
    ],
)
def test_each_kind_of_copy_is_found(source: str, kind: str) -> None:
    """The scan finds every kind of copy it looks for."""
    kinds = [k for _, k, _ in copies_in(textwrap.dedent(source))]
    assert kind in kinds


def test_imports_are_not_copies() -> None:
    """Importing or aliasing the contract's names is what it is for."""
    source = (
        "from coextra_conformance.contract import GET, WORD_BITS\n"
        "WORD_BITS = contract.WORD_BITS\n"
        "x = run(GET)\n"
    )
    assert list(copies_in(source)) == []


def test_worker_block_is_current() -> None:
    """The worker's generated names are the contract's."""
    tool = _load_tool()
    assert tool.main(["--check"]) == 0, (
        "run python tools/gen_contract_copies.py"
    )
    values = tool.contract_values(CONTRACT.read_text(encoding="utf-8"))
    block = tool.render(values)
    assert block in WORKER.read_text(encoding="utf-8")
    for name, value in values.items():
        assert f"{name} = {json.dumps(value)}" in block
        assert getattr(contract, name) == value


def test_worker_actions_are_contract_actions() -> None:
    """The worker translates only actions the contract defines."""
    tree = ast.parse(WORKER.read_text(encoding="utf-8"))
    tables = {
        target.id: _strings(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
        and target.id in ("FREE_ACTIONS", "HOOK_ACTIONS")
    }
    free = {action.value for action in contract.FreeAction}
    hook = {action.value for action in contract.HookAction}
    assert set(tables["FREE_ACTIONS"]) <= free
    assert set(tables["HOOK_ACTIONS"]) == hook


def test_report_schema_lists_the_contract_outcomes() -> None:
    """The committed schema's outcome enum is the contract's list."""
    schema = json.loads(
        (ROOT / "conformance" / "report.schema.json").read_text("utf-8")
    )
    enums = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if set(node.get("enum", ())) >= {"pass", "xpass"}:
                enums.append(node["enum"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert enums
    for enum in enums:
        assert sorted(enum) == sorted(contract.OUTCOMES)
