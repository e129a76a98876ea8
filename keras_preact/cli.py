"""Replaced by :mod:`keras_preact.command_line` and :mod:`keras_preact.native_logs`; kept so that
``from keras_preact.cli import ...`` still works."""

from keras_preact.command_line import EXIT_USAGE, ArgumentParser, UserError, cli_main
from keras_preact.native_logs import (
    NATIVE_LOGS_OPTION,
    add_native_logs_option,
    is_native_log_line,
    quiet_native_logs,
    show_native_logs,
)

__all__ = [
    "EXIT_USAGE",
    "NATIVE_LOGS_OPTION",
    "ArgumentParser",
    "UserError",
    "add_native_logs_option",
    "cli_main",
    "is_native_log_line",
    "quiet_native_logs",
    "show_native_logs",
]
