"""The import contracts in pyproject.toml hold for this tree, and fail on a broken one."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest

import newsletter

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(newsletter.__file__).parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the contracts of ``tree``, on the package found in ``tree``."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def contract(kind: str) -> dict[str, Any]:
    """The contract of this type in pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        config = tomllib.load(handle)
    [found] = [each for each in config["tool"]["importlinter"]["contracts"] if each["type"] == kind]
    return cast(dict[str, Any], found)


def layer_modules(layer: str) -> set[str]:
    return {name.strip() for name in layer.split(":")}


def test_the_tree_keeps_its_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_of_the_package_has_a_layer() -> None:
    # A module left out of every layer would be checked by no contract.
    named = set().union(*(layer_modules(layer) for layer in contract("layers")["layers"]))
    modules = {f"newsletter.{module.name}" for module in pkgutil.iter_modules([str(PACKAGE)])}
    assert modules == named


def test_everything_below_the_app_is_kept_from_flask() -> None:
    *_, services, sending, mail, core = contract("layers")["layers"]
    below_the_app = {services, sending, mail} | layer_modules(core)
    assert set(contract("forbidden")["source_modules"]) == below_the_app


@pytest.mark.parametrize(
    ("module", "line", "verdict", "chain"),
    [
        (
            "mail/__init__.py",
            "import newsletter.services",
            "newsletter.mail is not allowed to import newsletter.services",
            "newsletter.mail -> newsletter.services (l.1)",
        ),
        (
            "models.py",
            "import newsletter.runtime",
            "newsletter.models is not allowed to import newsletter.runtime",
            "newsletter.models -> newsletter.runtime (l.1)",
        ),
        (
            "sending/ratelimit.py",
            "import flask",
            "newsletter.sending is not allowed to import flask",
            "newsletter.sending.ratelimit -> flask (l.1)",
        ),
    ],
)
def test_an_upward_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, verdict: str, chain: str
) -> None:
    shutil.copytree(PACKAGE, tmp_path / "newsletter", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / "newsletter" / module
    path.write_text(f"{line}\n{path.read_text()}")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert verdict in result.stdout
    assert chain in result.stdout
