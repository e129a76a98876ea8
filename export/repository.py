"""The TF Serving model repository on disk: ``DIR/<name>/<version>/`` and ``DIR/models.config``.

Versions are integers; TF Serving serves the highest one. A version directory is only ever
created by renaming a complete, staged directory into place, and an existing one is never
replaced, so a running server never sees a half-written model.

A staging directory is named after the host and process that export in it
(``.staging-<host>-<pid>-<random>``): when an export is killed before it can remove its own, the
next export into the repository from the same host removes it, once that process is gone.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from export.options import ARTIFACTS_DIR, DEFAULT_BASE_PATH
from keras_preact.command_line import UserError

MODELS_CONFIG = "models.config"
STAGING_PREFIX = ".staging-"


def check_output_dir(repository: str | Path) -> Path:
    """The repository directory, created if missing."""
    repository = Path(repository)
    try:
        repository.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output directory {repository}: {e.strerror}") from None
    if not os.access(repository, os.W_OK):
        raise UserError(f"output directory {repository} is not writable")
    return repository


def versions(repository: str | Path, name: str) -> list[int]:
    """Existing versions of ``name``: SavedModels and artifact folders, ascending."""
    found: set[int] = set()
    for parent in (Path(repository) / name, Path(repository) / ARTIFACTS_DIR / name):
        if parent.is_dir():
            found.update(int(p.name) for p in parent.iterdir() if p.name.isdigit())
    return sorted(found)


def choose_version(repository: str | Path, name: str, version: int | None) -> int:
    """``version`` if it is new, else (when ``None``) one more than the highest existing one."""
    existing = versions(repository, name)
    if version is None:
        return (existing[-1] + 1) if existing else 1
    if version in existing:
        raise UserError(
            f"version {version} of model {name!r} already exists in {repository}; existing "
            "versions are never overwritten (omit --version to use the next free one)"
        )
    return version


@contextmanager
def staging_dir(repository: str | Path) -> Iterator[Path]:
    """A hidden temporary directory inside the repository (same file system, so renames are
    atomic), named after this host and process, removed when the block ends, whatever happens
    (short of the process being killed: see :func:`remove_stale_staging_dirs`)."""
    prefix = f"{_staging_prefix()}{os.getpid()}-"
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=repository))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_staging_dirs(repository: str | Path) -> list[Path]:
    """Remove the staging directories of exports from this host whose process is gone (killed
    before it could clean up); returns them. Those of running exports, of other hosts (whose
    processes cannot be seen from here) and any without a process id are left alone."""
    prefix = _staging_prefix()
    removed = []
    for path in sorted(Path(repository).glob(f"{STAGING_PREFIX}*")):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if (
            path.name.startswith(prefix)
            and pid.isdigit()
            and path.is_dir()
            and not _alive(int(pid))
        ):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _staging_prefix() -> str:
    host = "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname())
    return f"{STAGING_PREFIX}{host or 'host'}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def publish(staged: Path, target: Path) -> None:
    """Rename a complete ``staged`` directory to ``target``, which must not exist."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise UserError(f"{target} appeared while exporting; not overwriting it")
    # os.rename onto an existing non-empty directory fails, so a concurrent export cannot be
    # clobbered even between the check and the rename.
    try:
        os.rename(staged, target)
    except FileExistsError:
        raise UserError(f"{target} appeared while exporting; not overwriting it") from None
    except OSError as e:
        if e.errno != errno.ENOTEMPTY:
            raise
        raise UserError(f"{target} appeared while exporting; not overwriting it") from None


def read_models_config(path: str | Path) -> model_server_config_pb2.ModelServerConfig:
    """Parse a ``models.config`` (ModelServerConfig text proto)."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    try:
        text_format.Parse(text, config)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a valid ModelServerConfig text proto: {e}") from None
    return config


def models_config_with(
    repository: str | Path, name: str, base_path: str = DEFAULT_BASE_PATH
) -> model_server_config_pb2.ModelServerConfig:
    """The repository's ``models.config`` with an entry for ``name`` added (others kept as is)."""
    path = Path(repository) / MODELS_CONFIG
    config = (
        read_models_config(path) if path.exists() else model_server_config_pb2.ModelServerConfig()
    )
    entries = config.model_config_list.config
    if not any(entry.name == name for entry in entries):
        entry = entries.add()
        entry.name = name
        entry.base_path = f"{base_path.rstrip('/')}/{name}"
        entry.model_platform = "tensorflow"
        entry.model_version_policy.latest.num_versions = 1
    return config


def write_models_config(
    repository: str | Path, config: model_server_config_pb2.ModelServerConfig
) -> Path:
    """Write ``models.config`` atomically (temporary file, then rename over the old one)."""
    path = Path(repository) / MODELS_CONFIG
    tmp = path.with_name(f".{MODELS_CONFIG}.tmp-{os.getpid()}")
    tmp.write_text(text_format.MessageToString(config), encoding="utf-8")
    os.replace(tmp, path)
    return path
