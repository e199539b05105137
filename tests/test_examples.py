"""The examples in examples/ run as written: as subprocesses, without an API key, they use
the local simulator and must exit 0 having made what they say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT = 120.0

#: Each example script: the files it must leave in its working folder (a glob, or None),
#: and a line its output must contain.
EXPECTED: dict[str, tuple[str | None, str]] = {
    "batch_from_jsonl.py": ("videos/*.mp4", "4 complete, 0 failed"),
    "concurrent_pipeline.py": (None, "5 videos ready"),
    "generate_one.py": ("videos/sunset.mp4", "saved videos/sunset.mp4"),
    "generate_one_call.py": ("videos/harbour.mp4", "saved videos/harbour.mp4"),
    "simulator_in_tests.py": (
        "videos/simulated-clip.mp4",
        "ok: a failed generation is reported as None",
    ),
    "sync_script.py": ("videos/tide.mp4", "saved videos/tide.mp4"),
}


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
    """Each example script (not the _helpers) has its expectations here."""
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(EXPECTED)


#: Examples whose second run in the same folder resumes the first (makes nothing again).
RESUMES: Final = frozenset({"batch_from_jsonl.py"})


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_offline_and_makes_its_output(script: str, tmp_path: Path) -> None:
    """The example exits 0 against the simulator and produces what it announces, and so
    does a second run in the same folder; one that promises to resume makes nothing
    again (the same files, untouched: a new job would be a new file, its id in the name)."""
    files, line = EXPECTED[script]
    result = run([str(EXAMPLES / script)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert line in result.stdout
    made = sorted(tmp_path.glob(files)) if files is not None else []
    if files is not None:
        assert made, f"{script} made no {files}"
        for video in made:
            assert video.read_bytes()[4:8] == b"ftyp"
    first = {video: video.stat().st_ino for video in made}
    again = run([str(EXAMPLES / script)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert line in again.stdout
    if script in RESUMES:
        assert {video: video.stat().st_ino for video in tmp_path.glob(files or "")} == first
    # Everything it wrote is under videos/, which .gitignore keeps out of a checkout's status.
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.relative_to(tmp_path).parts[0] == "videos" for p in written), written
    ignored = (EXAMPLES.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "videos/" in ignored


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
