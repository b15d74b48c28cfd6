"""bin/check-sizes, the size limits bin/lint enforces: no module over 400 lines, no function over 60, but
what bin/size-exceptions lists (and an exception that fits again must leave the list)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "bin" / "check-sizes"


def function(name: str, lines: int) -> str:
    """Source of a function ``lines`` long, its ``def`` line included."""
    return f"def {name}():\n" + "    x = 1\n" * (lines - 1)


def check(*paths, exceptions: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["--exceptions", str(exceptions or "/nonexistent")]
    command = [sys.executable, str(CHECK), *map(str, paths), *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd)


def test_a_function_over_60_lines_fails_naming_it(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(function("short", 60) + "\n\n" + function("long", 61))
    run = check(tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == f"{module}::long: 61 lines, over the limit of 60"


def test_a_decorated_function_counts_its_decorators(tmp_path):
    (tmp_path / "module.py").write_text("@staticmethod\n" + function("decorated", 60))
    assert check(tmp_path).returncode == 1
    (tmp_path / "module.py").write_text(function("plain", 60))
    assert check(tmp_path).returncode == 0


def test_a_module_over_400_lines_fails(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("".join(function(f"f{i}", 10) for i in range(41)))  # 41 x 10 lines
    run = check(module)
    assert run.returncode == 1 and f"{module}: 410 lines, over the limit of 400" in run.stderr


def test_a_listed_exception_passes_and_one_that_fits_again_must_leave_the_list(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(function("long", 61))
    exceptions = tmp_path / "exceptions"
    exceptions.write_text(f"# why\n{module}::long  # temporary\n")
    assert check(module, exceptions=exceptions).returncode == 0
    module.write_text(function("long", 60))
    run = check(module, exceptions=exceptions)
    assert run.returncode == 1 and "within the limits now: delete its line" in run.stderr


def test_the_package_and_the_workflow_scripts_keep_the_limits_and_learn_has_no_exception():
    run = check("src", "workflow/scripts", exceptions=REPO / "bin" / "size-exceptions", cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "learn/" not in (REPO / "bin" / "size-exceptions").read_text()
