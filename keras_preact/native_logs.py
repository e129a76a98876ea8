"""TensorFlow's native log lines kept off a command's standard error, and shown on request.

:func:`keras_preact.command_line.cli_main` calls :func:`quiet_native_logs` as a command starts.

Hiding the logs
---------------
TensorFlow, and XLA, absl, gRPC and LiteRT inside it, write log lines from C++ straight to the
process's standard error: the oneDNN, CUDA and CPU-instruction notices when TensorFlow loads,
SavedModel loading, the TFLite converter's chatter, a failed op's status. ``TF_CPP_MIN_LOG_LEVEL``
does not stop those written while TensorFlow loads. So from the start of a command, file
descriptor 2 is a pipe read by a small filter process (a second Python, standard library only)
that drops:

* native log lines, ``[IWE]MMDD hh:mm:ss.uuuuuu  pid file:line] ...``, and the indented lines
  that continue one of them;
* absl's ``WARNING: All log messages before absl::InitializeLog() ...`` notice;
* the second line of the CPU-instruction notice (``To enable the following instructions: ...``);
* the TFLite converter's and LiteRT's unprefixed chatter (``fully_quantize: ...``,
  ``Estimated count of arithmetic ops: ...``, ``INFO: Created TensorFlow Lite XNNPACK ...``),

and passes everything else through unchanged, byte for byte: the command's own messages, Python's
error lines and tracebacks, a fatal ``F`` line and everything after it, anything it does not
recognise. Standard output is not touched. A line that ends in a carriage return (a progress
display) passes at once, and an unfinished line after a short pause. The filter stays on until
the process exits, as TensorFlow writes lines while the interpreter shuts down too; when ``main``
returns and when the process exits, the command waits until everything it wrote has passed.

A filter process rather than a reader thread: a line written just before the process aborts (a
fatal ``F`` line, a crash report) would die in the pipe with a thread of that process; the
filter process reads the pipe to its end. It is detached from the command's process group, so
Ctrl-C reaches the command only, and the command's last lines still pass.

Python-level noise is silenced at the same time: the ``absl``, ``tensorflow``, ``tf2onnx`` and
JAX platform loggers below ERROR, and warnings raised inside TensorFlow, Keras, absl, tf2onnx,
ONNX, protobuf, LiteRT and JAX.

Showing the logs
----------------
Nothing is hidden when ``TF_CPP_MIN_LOG_LEVEL=0`` is set in the environment (the user asked for
every TensorFlow log line), and a command shows everything from the point where its user asks
for it: :func:`add_native_logs_option` adds ``--native-logs`` to its parser, and the command calls
:func:`show_native_logs` after parsing when it was given. The option is not called ``--verbose``:
``training.cifar --verbose`` already chooses a progress display (auto, bar, line, quiet), and one
option name should not mean two things in the commands of one package.

Lines written while TensorFlow loads are hidden only if the filter is on by then: an entry module
imports TensorFlow, Keras and the models inside ``main``, after parsing, not at module level. This
module needs only the standard library; the filter process runs this file as a script.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import re
import select
import subprocess
import sys
import time
import warnings

NATIVE_LOGS_OPTION = "--native-logs"
# glog / absl: severity, MMDD (or YYYYMMDD), time (absl writes seconds since the epoch before it
# is initialised: "00:00:1796191838.896480"), thread id, file:line].
_NATIVE_LINE = re.compile(
    r"(?P<severity>[IWEF])\d{4}(?:\d{4})? \d\d:\d\d:\d+(?:\.\d+)?\s+\d+\s+[^\s:\]]+:\d+\] "
)
_OTHER_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler"
    r" flags\.?"
    r"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, "
    r"output_inference_type: \w+"
    r"|Estimated count of arithmetic ops: .*"
    r"|INFO: (?:Created TensorFlow Lite|Initialized TensorFlow Lite|Replacing \d+ out of \d+ "
    r"node).*"
)
_NOISY_LOGGERS = ("absl", "tensorflow", "tf2onnx", "jax._src.xla_bridge")
_NOISY_WARNING_MODULES = (
    r"(tensorflow|tf_keras|keras|absl|tf2onnx|onnx|onnxruntime|google\.protobuf|ai_edge_litert"
    r"|jax|jaxlib)(\.|$)"
)
_HOLD_SECONDS = 0.2  # an unfinished line is passed on after this long without more output
_WAIT_SECONDS = 2.0  # the longest a command waits for the filter to pass its lines on
_FILTER_ARGUMENT = "--filter-native-log-lines"


def is_native_log_line(line: str) -> bool:
    """Whether ``line`` (without its line ending) is a line the filter drops on its own: a
    non-fatal native log line, absl's early-logging notice, or known converter chatter."""
    match = _NATIVE_LINE.match(line)
    if match:
        return match["severity"] != "F"
    return _OTHER_NOISE.fullmatch(line) is not None


class _Lines:
    """The filter's decisions, line by line (a line being bytes with their line ending)."""

    def __init__(self) -> None:
        self.fatal = False  # after a fatal line everything passes: the process is going down
        self.continuing = False  # inside a dropped native message's indented continuation lines

    def keep(self, line: bytes) -> bool:
        if self.fatal:
            return True
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        match = _NATIVE_LINE.match(text)
        if match:
            self.fatal = match["severity"] == "F"
            self.continuing = not self.fatal
            return self.fatal
        if self.continuing and text[:1] in (" ", "\t") and text.strip():
            return False
        self.continuing = False
        return _OTHER_NOISE.fullmatch(text) is None


_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)")


def _filter_stream(source: int, target: int, marker: bytes, ack: int) -> None:
    """Copy ``source`` to ``target`` until end of file, without the lines :class:`_Lines` drops;
    at each ``marker`` (not copied), pass on what came before it and write a byte to ``ack``.
    The filter process's whole job."""
    lines = _Lines()
    broken = False

    def write(data: bytes) -> None:
        nonlocal broken
        while data and not broken:
            try:
                data = data[os.write(target, data) :]
            except OSError:  # stderr closed: keep reading, so that the command never blocks
                broken = True

    def copy(data: bytes) -> bytes:
        """Copy the whole lines of ``data``; return the unfinished rest."""
        end = 0
        for match in _LINE.finditer(data):
            if lines.keep(match[0]):
                write(match[0])
            end = match.end()
        return data[end:]

    pending = b""
    while True:
        if pending and not select.select([source], [], [], _HOLD_SECONDS)[0]:
            if lines.keep(pending):
                write(pending)
            pending = b""
            continue
        try:
            data = os.read(source, 1 << 16)
        except OSError:
            break
        if not data:
            break
        pending += data
        while (at := pending.find(marker)) >= 0:
            rest = copy(pending[:at])
            if rest and lines.keep(rest):
                write(rest)
            pending = pending[at + len(marker) :]
            with contextlib.suppress(OSError):
                os.write(ack, b".")
        pending = copy(pending)
    if pending and lines.keep(pending):
        write(pending)


class _NativeLogFilter:
    """fd 2 routed through the filter process, and the Python loggers and warnings quieted."""

    def __init__(self) -> None:
        self.saved_stderr: int | None = None  # where the filter writes: the real stderr
        self.pipe: int | None = None  # this process's own end of the pipe fd 2 now is
        self.acks: int | None = None
        self.marker = b"\0" + os.urandom(8).hex().encode() + b"\0"
        self.process: subprocess.Popen | None = None
        self.logger_levels: dict[str, int] = {}
        self.warnings = warnings.catch_warnings()

    def start(self) -> None:
        for name in _NOISY_LOGGERS:
            logger = logging.getLogger(name)
            self.logger_levels[name] = logger.level
            logger.setLevel(logging.ERROR)
        self.warnings.__enter__()
        warnings.filterwarnings("ignore", module=_NOISY_WARNING_MODULES)
        self._route_stderr()

    def _route_stderr(self) -> None:
        here = os.path.abspath(__file__)
        if os.name != "posix" or not sys.executable or not os.path.isfile(here):
            return
        _flush_stderr()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to filter
            return
        read_end, write_end = os.pipe()
        acks, ack_end = os.pipe()
        try:
            # -I -S: the standard library only, whatever the environment holds. Detached from
            # the command's process group: Ctrl-C and a kill of the group are for the command only.
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    here,
                    _FILTER_ARGUMENT,
                    self.marker.hex(),
                    str(ack_end),
                ],
                stdin=read_end,
                stdout=saved,
                stderr=saved,
                pass_fds=(ack_end,),
                start_new_session=True,
            )
        except OSError:
            for fd in (saved, write_end, acks):
                os.close(fd)
            return
        finally:
            os.close(read_end)
            os.close(ack_end)
        os.dup2(write_end, 2)
        self.saved_stderr, self.pipe, self.acks, self.process = saved, write_end, acks, process

    def pass_on(self) -> None:
        """Return once the filter has passed on (or dropped) everything written so far."""
        if self.pipe is None:
            return
        _flush_stderr()
        try:
            os.write(self.pipe, self.marker)
        except OSError:
            return
        deadline = time.monotonic() + _WAIT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            if select.select([self.acks], [], [], left)[0]:
                os.read(self.acks, 64)  # an acknowledgement, or end of file: the filter is gone
                return

    def stop(self) -> None:
        if self.pipe is not None:
            _flush_stderr()
            os.dup2(self.saved_stderr, 2)
            for fd in (self.saved_stderr, self.pipe, self.acks):
                os.close(fd)
            self.saved_stderr = self.pipe = self.acks = None
            # This process no longer writes to the pipe: the filter reads to its end and exits
            # (later, if a child process still holds the pipe; its lines are filtered until then).
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(_WAIT_SECONDS)
        self.warnings.__exit__(None, None, None)
        for name, level in self.logger_levels.items():
            logging.getLogger(name).setLevel(level)


def _flush_stderr() -> None:
    for stream in {id(s): s for s in (sys.stderr, sys.__stderr__) if s is not None}.values():
        with contextlib.suppress(Exception):
            stream.flush()


_filter: _NativeLogFilter | None = None


def quiet_native_logs() -> None:
    """Hide TensorFlow's native log lines and Python-level noise from now until the process
    ends, or until :func:`show_native_logs`. ``cli_main`` calls it as the command starts.

    Nothing is hidden when ``TF_CPP_MIN_LOG_LEVEL=0`` is set. The filter stays on after ``main``
    returns, because TensorFlow writes lines while the interpreter shuts down too; at exit the
    process waits for the filter to pass on what was written before.
    """
    global _filter
    if _filter is not None or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    _filter = _NativeLogFilter()
    _filter.start()
    atexit.register(pass_on_written_lines)


def pass_on_written_lines() -> None:
    """Return once the filter has passed on everything written so far (when it is on)."""
    if _filter is not None:
        _filter.pass_on()


def show_native_logs() -> None:
    """Show TensorFlow's log lines and Python-level warnings from now on (a command calls it
    after parsing, when its user gave ``--native-logs``)."""
    global _filter
    if _filter is not None:
        log_filter, _filter = _filter, None
        log_filter.stop()


def add_native_logs_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--native-logs`` (``args.native_logs``) to a command's parser; see
    :func:`show_native_logs`."""
    parser.add_argument(
        NATIVE_LOGS_OPTION,
        action="store_true",
        help="show TensorFlow's own log lines (start-up notices, SavedModel loading, converter "
        "output) and library warnings, hidden by default; also shown when TF_CPP_MIN_LOG_LEVEL=0",
    )


if __name__ == "__main__" and sys.argv[1:2] == [_FILTER_ARGUMENT]:
    _filter_stream(0, 1, bytes.fromhex(sys.argv[2]), int(sys.argv[3]))
