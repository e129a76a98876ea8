"""keras_preact.native_logs' filter of native log lines, in real child processes (no TensorFlow needed:
the children write TensorFlow's real start-up lines to file descriptor 2 themselves)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from keras_preact import native_logs

ROOT = Path(__file__).resolve().parents[2]

# Lines TensorFlow 2.21, absl, LiteRT and the TFLite converter wrote in real runs of the export.
NATIVE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796191838.896480    5719 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796191838.896973    5719 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "I0000 00:00:1796191839.044091    5719 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX_VNNI FMA, in "
    "other operations, rebuild TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1796192054.672003    6496 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "W0000 00:00:1796192054.672003    6496 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
    "I0517 12:34:56.789012   12345 loader.cc:236] Restoring SavedModel bundle.",
    "fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: "
    "FLOAT32",
    "Estimated count of arithmetic ops: 81.920 M  ops, equivalently 40.960 M  MACs",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]
# A native message of two lines (one write), as a failed op logs it.
MULTILINE = (
    "W0000 00:00:1796192107.081615    6971 local_rendezvous.cc:412] Local rendezvous is aborting "
    "with status: INVALID_ARGUMENT: Unknown image file format.\n"
    "\t [[{{function_node __inference_map_while_body_1670_751}}{{node map/while/DecodeImage}}]]"
)
KEPT = [
    "error: model file not found: missing.keras",
    "Traceback (most recent call last):",
    '  File "x.py", line 1, in <module>',
    "RuntimeError: a bug",
    "F0000 00:00:1796192054.672003    6496 tensor.cc:1] Check failed: fatal",
    "Image 10 of 32",
    "INFO: not from TensorFlow Lite",
    "",
]


def test_native_lines_are_recognised_and_no_others():
    for line in [*NATIVE, MULTILINE.splitlines()[0]]:
        assert native_logs.is_native_log_line(line), line
    for line in KEPT:
        assert not native_logs.is_native_log_line(line), line


# A command as the entry points write it, run in a fresh Python (keras_preact.command_line and
# keras_preact.native_logs need only the standard library: the child starts in a blink).
COMMAND = textwrap.dedent(
    """
    import argparse, atexit, logging, os, sys, time, warnings
    from keras_preact import command_line, native_logs
    assert "keras" not in sys.modules
    NATIVE = {native!r}

    @command_line.cli_main
    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("mode")
        native_logs.add_native_logs_option(parser)
        args = parser.parse_args()
        if args.native_logs:
            native_logs.show_native_logs()
        logging.basicConfig(level=logging.INFO)
        logging.getLogger("absl").warning("absl noise")
        logging.getLogger("tf2onnx.tfonnx").info("tf2onnx noise")
        warnings.warn_explicit("keras noise", UserWarning, "layer.py", 1, module="keras.src.x")
        for line in NATIVE:
            os.write(2, line.encode() + b"\\n")
        print("stdout: " + NATIVE[1], flush=True)
        print("own line", file=sys.stderr, flush=True)
        if args.mode == "user-error":
            raise command_line.UserError("bad input")
        if args.mode == "bug":
            raise RuntimeError("a bug")
        if args.mode == "abort":
            os.write(2, b"{fatal}\\n*** Check failure stack trace: ***\\n    @ 0x7f00 (unknown)\\n")
            os.abort()
        if args.mode == "progress":
            os.write(2, b"step 1/2\\r")
            sys.stdin.read()
        if args.mode == "wait":
            print("waiting", flush=True)
            time.sleep(60)
        return 0

    # Runs after the filter's own exit handler, as TensorFlow's shutdown does.
    atexit.register(os.write, 2, NATIVE[1].encode() + b"\\n")
    sys.exit(main())
    """
)


def run_command(mode: str, *options: str, env_extra: dict | None = None, **kwargs):
    script = COMMAND.format(native=[*NATIVE, MULTILINE], fatal=KEPT[4])
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(env_extra or {})
    argv = [sys.executable, "-c", script, mode, *options]
    if kwargs.pop("popen", False):
        return subprocess.Popen(argv, env=env, **kwargs)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_only_the_commands_own_lines_pass():
    proc = run_command("ok")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "own line\n"
    # Standard output is not filtered, even a line that looks like a native one.
    assert proc.stdout == f"stdout: {NATIVE[1]}\n"


@pytest.mark.parametrize(
    "options, env", [(["--native-logs"], {}), ([], {"TF_CPP_MIN_LOG_LEVEL": "0"})]
)
def test_native_logs_option_and_tf_cpp_min_log_level_show_everything(options, env):
    proc = run_command("ok", *options, env_extra=env)
    assert proc.returncode == 0, proc.stderr
    for line in [*NATIVE, *MULTILINE.splitlines()]:
        assert line in proc.stderr.splitlines()
    assert "absl noise" in proc.stderr and "tf2onnx noise" in proc.stderr
    assert "keras noise" in proc.stderr
    assert proc.stderr.splitlines()[-2:] == ["own line", NATIVE[1]]  # the last one at exit


def test_user_error_is_one_line_and_a_bug_keeps_its_traceback():
    proc = run_command("user-error")
    assert (proc.returncode, proc.stderr) == (2, "own line\nerror: bad input\n")
    proc = run_command("bug")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == "own line"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: a bug"
    assert not any(native_logs.is_native_log_line(line) for line in lines)


def test_a_fatal_line_and_its_stack_trace_pass_even_when_the_process_aborts():
    proc = run_command("abort")
    assert proc.returncode == -signal.SIGABRT
    assert proc.stderr == (
        f"own line\n{KEPT[4]}\n*** Check failure stack trace: ***\n    @ 0x7f00 (unknown)\n"
    )


def test_a_progress_line_passes_before_its_line_ends():
    proc = run_command(
        "progress",
        popen=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        seen, deadline = b"", time.monotonic() + 30
        while b"step 1/2\r" not in seen and time.monotonic() < deadline:
            if select.select([proc.stderr], [], [], 1.0)[0]:
                seen += os.read(proc.stderr.fileno(), 4096)
        assert seen == b"own line\nstep 1/2\r"  # while the command still runs
    finally:
        proc.stdin.close()
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0


def test_ctrl_c_reaches_the_command_and_its_last_line_passes():
    # Ctrl-C in a terminal signals the whole foreground process group.
    proc = run_command(
        "wait", popen=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        while proc.stdout.readline() not in (b"waiting\n", b""):
            pass
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, err) == (130, b"own line\ninterrupted\n")
