"""What every command line shares: one clear line for bad input, and TensorFlow's logs kept quiet.

Every entry point (``python -m export``, ``python -m training.cifar``, ...) wraps its ``main`` in
:func:`cli_main`:

* bad input a user can fix raises :class:`UserError`; ``cli_main`` prints it as one
  ``error: <message>`` line and exits with status 2, without a traceback;
* :class:`ArgumentParser` turns a usage error into such a line too;
* from the start of ``main``, TensorFlow's own log lines are hidden
  (:func:`keras_preact.native_logs.quiet_native_logs`; ``--native-logs`` shows them).

This module needs only the standard library, as does :mod:`keras_preact.native_logs`, and
``keras_preact`` loads its other modules lazily, so ``from keras_preact.command_line import
cli_main`` does not import Keras and a command answers ``--help`` in a blink.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from keras_preact.native_logs import pass_on_written_lines, quiet_native_logs

T = TypeVar("T")

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input a user can fix: the message is printed as one line, without a traceback."""


# Errors that come from what the user gave us (files, options), not from bugs in this package.
_USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)


def cli_main(fn: Callable[..., T]) -> Callable[..., T]:
    """Wrap a CLI ``main``: native log lines are hidden from its start (see
    :mod:`keras_preact.native_logs`), and user errors become ``error: <message>`` on stderr and
    exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        quiet_native_logs()
        try:
            return fn(*args, **kwargs)
        except _USER_ERRORS as e:
            message = " ".join(str(e).split()) or type(e).__name__
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            pass_on_written_lines()

    return wrapper


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose usage errors are :class:`UserError`: under
    :func:`cli_main`, one ``error: <message> (see <prog> --help)`` line, exit 2, without the usage."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{message} (see {self.prog} --help)")
