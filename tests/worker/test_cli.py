"""`ftaas bench NAME ARGS` runs bench/NAME.py of the source tree, passing ARGS through (its own --help included)."""

from __future__ import annotations

import subprocess
import sys


def _ftaas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=120)


def test_bench_passes_its_arguments_to_the_script() -> None:
    run = _ftaas("bench", "safety", "--help")
    assert run.returncode == 0, run.stderr
    assert "usage: safety.py" in run.stdout and "--quick" in run.stdout


def test_unknown_bench_names_the_ones_there_are() -> None:
    run = _ftaas("bench", "no-such-bench")
    assert run.returncode == 1
    assert "no bench 'no-such-bench'" in run.stderr and "safety" in run.stderr
