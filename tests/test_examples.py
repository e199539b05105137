"""The examples in examples/ run as written: as subprocesses, without an API key, they use
the local simulator and must exit 0 having made what they say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT = 120.0


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a Python command in ``cwd`` with no LEONARDO_* variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEONARDO_")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_every_example_is_covered() -> None:
    """Each example script has a test below (a new one must get one)."""
    assert {p.name for p in EXAMPLES.glob("*.py")} == {"generate_one.py", "simulator_in_tests.py"}


def test_generate_one_writes_a_video(tmp_path: Path) -> None:
    """generate_one.py uploads both frames, waits and saves sunset.mp4."""
    result = run([str(EXAMPLES / "generate_one.py")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sunset.mp4").read_bytes()[4:8] == b"ftyp"
    assert "saved sunset.mp4" in result.stdout


def test_simulator_in_tests_runs_its_checks(tmp_path: Path) -> None:
    """simulator_in_tests.py runs its checks with the simulator as a context manager."""
    result = run([str(EXAMPLES / "simulator_in_tests.py")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "simulated-clip.mp4").is_file()
    assert not (tmp_path / "never-written.mp4").exists()
    assert "ok: a failed generation is reported as None" in result.stdout


def test_simulator_in_tests_passes_under_pytest(tmp_path: Path) -> None:
    """Its test functions pass under pytest with the leonardo_simulator fixture."""
    example = EXAMPLES / "simulator_in_tests.py"
    result = run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(EXAMPLES.parent),
         "-c", str(EXAMPLES.parent / "pyproject.toml"), str(example)],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
