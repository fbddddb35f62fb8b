"""The apps' layers (pyproject.toml [tool.importlinter], run by .ci/run): the code keeps them, and
an import that points up breaks them, so CI fails on it."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
APPS = ("coop", "accounts", "meters", "billing", "notifications", "demo")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_code_keeps_its_layers():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_an_import_that_points_up_breaks_the_layers(tmp_path):
    for app in APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "meters" / "selectors_upward.py", "w") as module:
        module.write("from billing import selectors  # noqa: F401\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1
    assert "meters is not allowed to import billing" in done.stdout
    assert "meters.selectors_upward -> billing.selectors" in done.stdout
