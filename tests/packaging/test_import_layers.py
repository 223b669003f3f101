"""The package's import layout holds: import-linter checks the contracts in pyproject.toml ([tool.importlinter]):
no import circles among the config modules nor among the plan's (function-local imports count: they hide a circle,
they do not break it), the plan's modules in layers, and the config importing none of the tools."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint_imports), "--no-cache", "pyproject.toml"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout and "3 kept" in proc.stdout, proc.stdout
