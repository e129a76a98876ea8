"""The training commands print their own lines only: TensorFlow's log lines are hidden unless
``--native-logs`` asks for them (real child processes, in the environment of a user who has not
set TF_CPP_MIN_LOG_LEVEL)."""

from __future__ import annotations

import subprocess
import sys

from training_helpers import ROOT, SAMPLE_RUN, env

from keras_preact.native_logs import is_native_log_line


def _run(*args: str) -> subprocess.CompletedProcess:
    user_env = {k: v for k, v in env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "training.cifar", *SAMPLE_RUN, *args],
        cwd=ROOT,
        env=user_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_training_run_prints_no_native_log_lines_unless_asked(tmp_path):
    quiet = _run("--epochs", "1", "--output", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert f"done: {tmp_path / 'quiet'}: final test error" in quiet.stdout
    assert not [line for line in quiet.stderr.splitlines() if is_native_log_line(line)], (
        quiet.stderr
    )

    # Asked for: TensorFlow's start-up lines come through, and the command's error line after them
    # (refused after TensorFlow has loaded, so that this costs no training).
    shown = _run("--epochs", "0", "--output", str(tmp_path / "shown"), "--native-logs")
    assert shown.returncode == 2, shown.stderr[-2000:]
    lines = shown.stderr.splitlines()
    assert sum(is_native_log_line(line) for line in lines) >= 2, shown.stderr
    assert lines[-1] == "error: epochs must be at least 1", shown.stderr
    assert not (tmp_path / "shown").exists()
