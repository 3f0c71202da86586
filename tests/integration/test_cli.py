"""A newcomer's first commands, with no stack running: clear answers, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import env_for, stack_settings

MODELVIEW = str(Path(sys.executable).parent / "modelview")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    settings = stack_settings(tmp_path)  # free ports: nothing listens there
    return subprocess.run(
        [MODELVIEW, *args], env=env_for(settings), capture_output=True, text=True, timeout=120
    )


def test_help_needs_no_broker_and_lists_ours_beside_fausts(tmp_path: Path) -> None:
    done = run(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for command in ("stack", "demo", "train", "validate", "models", "worker", "tables"):
        assert f"\n  {command} " in done.stdout, command
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["worker"], ["train", "some-dataset"], ["rebuild"]])
def test_a_command_that_cannot_reach_the_broker_says_so_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    done = run(tmp_path, *command)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the broker at kafka://127.0.0.1:" in lines[0], lines
    assert "modelview stack up" in lines[0]
