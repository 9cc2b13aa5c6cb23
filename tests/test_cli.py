"""The command line's contract: one-line errors with exit code 2, never a traceback, for a user's mistake."""

import subprocess
import sys


def run_rir(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rir", *args], capture_output=True, text=True)


def test_unknown_command_is_one_line_and_exit_2():
    proc = run_rir("no-such-command")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-command" in lines[0]
    assert "Traceback" not in proc.stderr


def test_no_command_prints_help_and_exit_2():
    proc = run_rir()
    assert proc.returncode == 2
    assert "usage: rir" in proc.stderr
