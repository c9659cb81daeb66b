"""The layers are a contract the project enforces: `lint-imports` on every import, also those inside functions.

parity.commands on top, then the two builds (independent of each other), then the
framework-neutral core, and no import cycles. The contract is in pyproject.toml; these
tests run it, check that it names every core module, and show it fails when a forbidden
import is put in (inside a function, where a check of `sys.modules` after import cannot see it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("parity", "bertcnn_torch", "bertcnn_tf")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install 'bertcnn[test]')")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}
    return subprocess.run([str(exe), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def copy_of_the_project(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_layers_and_acyclic_contracts_are_kept():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken" in proc.stdout


def test_the_core_layer_names_every_module_outside_the_command_line():
    """A new core module must be placed in the contract, or it would escape the check."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["id"] == "layers"]
    core = {m.strip() for m in layers[-1].split(":")}
    top = {p.name for p in (REPO / "parity").iterdir() if not p.name.startswith(("_", "."))}
    top = {name.removesuffix(".py") for name in top if name.endswith(".py") or (REPO / "parity" / name).is_dir()}
    assert {f"parity.{name}" for name in top - {"commands"}} == core


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The core reaching up into a build, inside a function (invisible to a sys.modules check).
        ("parity/config.py", "def _probe():\n    import bertcnn_torch.model  # noqa: F401\n", "parity.config"),
        # The core reaching up into the command line.
        ("parity/io/reader.py", "def _probe():\n    from parity.commands import builds  # noqa: F401\n", "parity.io"),
        # One build importing the other.
        ("bertcnn_tf/model.py", "def _probe():\n    import bertcnn_torch  # noqa: F401\n", "bertcnn_tf"),
        # A cycle inside the core: the config importing the tokenizer, which imports the config.
        (
            "parity/config.py",
            "def _probe():\n    import parity.tokenize  # noqa: F401\n",
            "No cycles are allowed in parity",
        ),
    ],
    ids=["core-imports-build", "core-imports-commands", "build-imports-build", "cycle"],
)
def test_a_forbidden_import_breaks_the_contract(module, line, broken, tmp_path):
    root = copy_of_the_project(tmp_path)
    with open(root / module, "a", encoding="utf-8") as f:
        f.write("\n\n" + line)
    proc = lint_imports(root)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout, proc.stdout[-2000:]
    assert broken in proc.stdout


def test_modules_and_functions_stay_short():
    """Modules of at most ~400 lines, functions of at most ~100: a module or function past them has two jobs."""
    import ast

    long_modules, long_functions = [], []
    for name in PACKAGES:
        for path in sorted((REPO / name).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            where = path.relative_to(REPO)
            if len(text.splitlines()) > 400:
                long_modules.append((str(where), len(text.splitlines())))
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 100:
                    long_functions.append((f"{where}:{node.name}", node.end_lineno - node.lineno + 1))
    assert long_modules == [] and long_functions == []
