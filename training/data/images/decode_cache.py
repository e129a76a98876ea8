"""Which images of a large folder decoded before and have not changed since (``DecodeCache``).

Decoding every image is what makes the scan of a large folder slow (ImageNet's 1.3 million files take
minutes), so a SQLite database remembers each image that decoded by path, size, modification time and
decoder (TensorFlow's version); it is decoded again only when one of those differs. Failed images are not
remembered. The database lives in ``$KERAS_PREACT_CACHE``, else ``$XDG_CACHE_HOME/keras-preact`` or
``~/.cache/keras-preact`` (``KERAS_PREACT_CACHE=off``: no cache). When it cannot be used the scan says so
in one line and checks every image; a damaged one is moved aside (``.damaged-*``) and started afresh.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

FILE_NAME = "checked-images.sqlite"
OFF = "off"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS checked (root TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, decoder TEXT NOT NULL, PRIMARY KEY (root, path))"
)


def cache_dir() -> Path | None:
    """Where the database is kept, or ``None`` when ``KERAS_PREACT_CACHE=off``."""
    configured = os.environ.get("KERAS_PREACT_CACHE")
    if configured == OFF:
        return None
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras-preact"


def _stat(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None  # gone since the listing: the decoder reports it
    return info.st_size, info.st_mtime_ns


class DecodeCache:
    """The images of one folder (``root``) known to decode, as of their size and mtime."""

    def __init__(self, root: Path, decoder: str, log: Callable[[str], None]) -> None:
        self.root, self.decoder, self.log = str(root), decoder, log
        directory = cache_dir()
        self.path = directory / FILE_NAME if directory is not None else None

    def _connect(self, *, retry: bool = True) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        connection = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=60)
            connection.execute(_SCHEMA)
            return connection
        except OSError as e:
            self.log(f"data: cannot use the scan cache {self.path}: {e.strerror or e}")
            return None
        except sqlite3.DatabaseError as e:
            if connection is not None:
                connection.close()
            # "file is not a database" and the like; a locked or unwritable one is left alone.
            damaged = not isinstance(e, sqlite3.OperationalError) and self.path.is_file()
            if not (damaged and retry):
                self.log(f"data: cannot use the scan cache {self.path}: {e}")
                return None
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            self.path.rename(aside)
        except OSError as e:
            self.log(f"data: cannot use the damaged scan cache {self.path}: {e.strerror or e}")
            return None
        self.log(f"data: the scan cache {self.path} was damaged; moved aside to {aside.name}")
        return self._connect(retry=False)

    @contextlib.contextmanager
    def _open(self, doing: str) -> Iterator[sqlite3.Connection | None]:
        """A connection in a transaction (None: the cache cannot be used); errors are logged."""
        connection = self._connect()
        try:
            with connection or contextlib.nullcontext():
                yield connection
        except sqlite3.Error as e:
            self.log(f"data: cannot {doing} the scan cache {self.path}: {e}")
        finally:
            if connection is not None:
                connection.close()

    def unchanged(self, paths: Sequence[str]) -> tuple[set[str], dict[str, tuple[int, int]]]:
        """``(paths known to decode and unchanged, size and mtime of every path found)``; nothing
        (and no file looked at) when the cache is off."""
        if self.path is None:
            return set(), {}
        stats, known = {p: s for p in paths if (s := _stat(p)) is not None}, {}
        with self._open("read") as connection:
            if connection is not None:
                rows = connection.execute(
                    "SELECT path, size, mtime_ns FROM checked WHERE root = ? AND decoder = ?",
                    (self.root, self.decoder),
                )
                known = {path: (size, mtime) for path, size, mtime in rows}
        return {p for p, s in stats.items() if known.get(p) == s}, stats

    def remember(self, decoded: Sequence[str], stats: dict[str, tuple[int, int]]) -> None:
        """Record that ``decoded`` (with the sizes and mtimes seen before decoding) decode."""
        rows = [(self.root, p, *stats[p], self.decoder) for p in decoded if p in stats]
        if rows:
            with self._open("write") as connection:
                if connection is not None:
                    connection.executemany(
                        "INSERT OR REPLACE INTO checked VALUES (?, ?, ?, ?, ?)", rows
                    )
