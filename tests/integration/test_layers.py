"""The layer contract of ``make lint`` (import-linter): it holds on the tree, and it breaks
on an upward import or a cycle, so it cannot pass by checking nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and of the contracts, to break on purpose."""
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on ``tree``'s packages rather than the installed ones."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def add_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n{statement}\n")


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    """As committed, both contracts are kept."""
    result = lint_imports(tree)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("ledger/values.py", "projections.tables"),
        ("projections/queries.py", "integrations.inbox"),
        ("integrations/jira.py", "api.schemas"),
        ("api/schemas.py", "release_ledger.demo"),
    ],
)
def test_an_upward_import_breaks_the_layers(tree: Path, module: str, imported: str) -> None:
    """Each layer importing the one above it is named as the broken contract."""
    add_import(tree / "src" / module, f"import {imported}  # noqa")

    result = lint_imports(tree)

    assert result.returncode == 1
    assert "Layers: ledger <- projections <- integrations <- api <- release_ledger BROKEN" in (
        result.stdout
    )


def test_a_cycle_between_modules_of_the_api_breaks_the_other_contract(tree: Path) -> None:
    """api.schemas importing api.routers.trains (which imports it) is a cycle."""
    add_import(tree / "src" / "api" / "schemas.py", "import api.routers.trains  # noqa")

    result = lint_imports(tree)

    assert result.returncode == 1
    assert "No import cycle between the modules of a layer BROKEN" in result.stdout
