"""One clear line and a non-zero exit for bad input, shared by every command-line entry point."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input a user can fix: the message is printed as one line, without a traceback."""


# Errors that come from what the user gave us (files, options), not from bugs in this package.
_USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)


def cli_main(fn: Callable[..., T]) -> Callable[..., T]:
    """Wrap a CLI ``main``: user errors become ``error: <message>`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _USER_ERRORS as e:
            message = " ".join(str(e).split()) or type(e).__name__
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
