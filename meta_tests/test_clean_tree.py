"""A test run leaves the checkout as it found it.

``make test`` runs tox environments; each writes its outputs (reports,
benchmark figures, previews of the PEP's generated blocks) under
``build/``, which git ignores, and ``tox -e regen`` is the one command
that writes the committed copies.  Running every environment here to
compare ``git status`` before and after would take many minutes (CI does
exactly that, in ``.ci/run``); these tests check the same rule from
tox.ini itself: every path a command is told to write is ignored by git,
no command but regen runs a writer of committed files, and the committed
reports are in the normalised form regen writes.
"""

from __future__ import annotations

import configparser
import importlib
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from coextra_conformance import report as suite_report

REPO = Path(__file__).resolve().parent.parent

#: Options whose value is a path a command writes.
OUTPUT_OPTIONS = ("--coextra-report", "--output", "-o")
#: Scripts that rewrite committed files unless told otherwise.
WRITERS = (
    "tools/regen.py",
    "tools/gen_pep_tables.py",
    "tools/gen_requirements.py",
)
#: How a writer may be called by a test run: checking, or writing elsewhere.
HARMLESS = ("--check", "--output")


def _tox_config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "tox.ini", encoding="utf-8")
    return parser


def _resolve(config: configparser.ConfigParser, value: str) -> str:
    """Expand tox's ``{[section]key}`` references."""
    pattern = re.compile(r"\{\[([^\]]+)\]([a-z_]+)\}")
    for _ in range(5):
        value = pattern.sub(
            lambda m: config.get(m[1], m[2], fallback=""), value
        )
    return value


def _commands(config: configparser.ConfigParser, env: str) -> list[list[str]]:
    """Return every command of an environment, split into words."""
    section = f"testenv:{env}"
    found = []
    for key in ("commands_pre", "commands", "commands_post"):
        text = _resolve(config, config.get(section, key, fallback=""))
        text = text.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                words = shlex.split(line.replace("{posargs}", ""))
                found.append(words)
    return found


def _test_envs(config: configparser.ConfigParser) -> list[str]:
    """Every environment except regen: all that ``make test`` may run."""
    return [
        name.removeprefix("testenv:")
        for name in config.sections()
        if name.startswith("testenv:") and name != "testenv:regen"
    ]


def _output_paths(words: list[str]) -> list[str]:
    """Return the values of the output options of one command."""
    paths = []
    for position, word in enumerate(words):
        for option in OUTPUT_OPTIONS:
            if word.startswith(option + "="):
                paths.append(word.split("=", 1)[1])
            elif word == option and position + 1 < len(words):
                paths.append(words[position + 1])
    if words[:1] == ["sphinx-build"]:
        paths.append(words[-1])
    return paths


@pytest.fixture(scope="module")
def regen() -> Iterator[ModuleType]:
    """Import tools/regen.py as a module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "tools"))
        yield importlib.import_module("regen")


def test_every_test_environment_writes_under_ignored_folders() -> None:
    """Reports, figures and the site go where git does not look."""
    config = _tox_config()
    outputs: dict[str, str] = {}
    for env in _test_envs(config):
        for words in _commands(config, env):
            for path in _output_paths(words):
                outputs[path] = env
    assert any(p.startswith("build/results/") for p in outputs), outputs
    assert "build/bench/latest.json" in outputs, outputs
    for path, env in outputs.items():
        concrete = path.replace("{env:COEXTRA_PYTHON_VERSION}", "3.99")
        assert not Path(concrete).is_absolute(), (env, path)
        assert concrete.startswith(("build/", "docs/_build/")), (env, path)
    if shutil.which("git") and (REPO / ".git").exists():
        concrete_paths = [
            p.replace("{env:COEXTRA_PYTHON_VERSION}", "3.99") for p in outputs
        ]
        done = subprocess.run(
            ["git", "check-ignore", "--no-index", *concrete_paths],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        ignored = set(done.stdout.split())
        assert ignored == set(concrete_paths), "not ignored: " + ", ".join(
            sorted(set(concrete_paths) - ignored)
        )


def test_only_regen_writes_committed_files() -> None:
    """No test environment runs a writer of committed files."""
    config = _tox_config()
    for env in _test_envs(config):
        for words in _commands(config, env):
            script = next((w for w in words if w in WRITERS), None)
            if script is None:
                continue
            assert any(
                w == option or w.startswith(option + "=")
                for w in words
                for option in HARMLESS
            ), f"tox -e {env} runs {script}, which rewrites committed files"
    assert _commands(config, "regen") == [["python", "tools/regen.py"]]


def test_bench_preview_leaves_the_pep_alone(tmp_path: Path) -> None:
    """gen_pep_tables --output writes the preview, not the PEP."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "tools"))
        gen_pep_tables = importlib.import_module("gen_pep_tables")
    pep = REPO / "pep" / "pep-9999.rst"
    before = pep.read_bytes()
    preview = tmp_path / "pep-9999.rst"
    bench = REPO / "benchmarks" / "results" / "latest.json"
    status = gen_pep_tables.main(
        ["--bench", str(bench), "--output", str(preview)]
    )
    assert status == 0
    assert pep.read_bytes() == before
    assert preview.read_text(encoding="utf-8") == before.decode("utf-8")


@pytest.mark.parametrize(
    ("raw", "stable"),
    [
        (
            ".tox/py313/lib/python3.11/site-packages/coextra_conformance/"
            "tests/test_index.py::test_a[3]",
            "conformance/tests/test_index.py::test_a[3]",
        ),
        (
            "../../venv/lib/python3.12/site-packages/coextra_conformance/"
            "tests/test_free.py::test_b",
            "conformance/tests/test_free.py::test_b",
        ),
        (
            "conformance/tests/test_store.py::test_c",
            "conformance/tests/test_store.py::test_c",
        ),
        ("meta_tests/test_x.py::test_d", "meta_tests/test_x.py::test_d"),
        (
            "myconformance/tests/test_e.py::test_e",
            "myconformance/tests/test_e.py::test_e",
        ),
    ],
)
def test_node_ids_are_stable(regen: ModuleType, raw: str, stable: str) -> None:
    """Suite and regen spell a test the same, whatever ran it."""
    assert suite_report.stable_nodeid(raw) == stable
    assert regen.stable_nodeid(raw) == stable


def test_committed_reports_are_normalised() -> None:
    """results/*.json: repository node IDs, no durations."""
    paths = sorted((REPO / "results").glob("*.json"))
    assert paths
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        for requirement in data["requirements"]:
            for test in requirement["tests"]:
                assert "duration" not in test, (path.name, test["nodeid"])
                assert test["nodeid"].startswith("conformance/tests/"), (
                    path.name,
                    test["nodeid"],
                )


def test_regen_copies_and_normalises(
    regen: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regen takes build/'s reports and figures; absent ones stay."""
    repo = tmp_path
    (repo / "build" / "results").mkdir(parents=True)
    (repo / "build" / "bench").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "benchmarks" / "results").mkdir(parents=True)
    for name, value in (
        ("REPO", repo),
        ("RUN_RESULTS", repo / "build" / "results"),
        ("RUN_BENCH", repo / "build" / "bench" / "latest.json"),
        ("RESULTS", repo / "results"),
        ("BENCH", repo / "benchmarks" / "results" / "latest.json"),
    ):
        monkeypatch.setattr(regen, name, value)
    run = {
        "requirements": [
            {
                "id": "R-A-1",
                "tests": [
                    {
                        "nodeid": ".tox/x/lib/python3.11/site-packages/"
                        "coextra_conformance/tests/t.py::f",
                        "outcome": "passed",
                        "duration": 0.25,
                    }
                ],
            }
        ]
    }
    (repo / "build" / "results" / "new.json").write_text(json.dumps(run))
    kept = '{"requirements": []}\n'
    (repo / "results" / "old.json").write_text(kept)
    (repo / "build" / "bench" / "latest.json").write_text('{"cases": []}')
    regen.commit_reports()
    regen.commit_benchmarks()
    written = json.loads((repo / "results" / "new.json").read_text())
    test = written["requirements"][0]["tests"][0]
    assert test == {"nodeid": "conformance/tests/t.py::f", "outcome": "passed"}
    assert (repo / "results" / "old.json").read_text() == (
        '{\n  "requirements": []\n}\n'
    )
    bench = repo / "benchmarks" / "results" / "latest.json"
    assert bench.read_text() == '{"cases": []}'
    # Regenerating again changes nothing: the committed form is a fixed point.
    stamp = {p: p.read_text() for p in (repo / "results").glob("*.json")}
    regen.commit_reports()
    assert stamp == {
        p: p.read_text() for p in (repo / "results").glob("*.json")
    }


def test_ci_checks_git_status_after_make_test() -> None:
    """.ci/run fails when make test leaves a tracked file changed."""
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    make = script.index("make test")
    status = script.index("git status --porcelain")
    assert make < status, "the check runs after make test"
