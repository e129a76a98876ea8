"""Fetching a published weights file into the cache, verified, or one line saying why not.

The download is ``keras.utils.get_file``'s (its progress bar on a terminal, its MD5/SHA-256
check), into a temporary file beside its place in the cache; only a file that passed every check
is renamed into place, so the cache never holds a partial or different file. Checks, as the
source publishes them: the full MD5 (keras.applications), the SHA-256 prefix in the file name
(torchvision, akamaster, chenyaofo: what ``torch.hub`` checks), and, where the source publishes no
hash (timm's Hugging Face files), the SHA-256 recorded when the file was first fetched: a later
file that differs is refused.

Where the files come from: the source's URL, or ``$KERAS_PREACT_WEIGHTS_MIRROR/<file name>`` when
that variable is set (a folder or web server holding the files under the names ``list_weights``
shows), with the same checks. Two processes fetching one file wait for each other (a lock file).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import socket
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path

from keras_preact.weights.table import WeightsEntry

MIRROR_VARIABLE = "KERAS_PREACT_WEIGHTS_MIRROR"
CACHE_VARIABLE = "KERAS_PREACT_CACHE"
KNOWN_HASHES = "known-sha256.json"
TIMEOUT_SECONDS = 60.0
"""How long a stalled connection is waited for before the fetch is given up."""
_CHUNK = 1 << 20


class WeightsUnavailable(ValueError):
    """Named weights could not be fetched, verified or cached: the message is one line naming the
    URL, the cache path and ``weights=PATH`` as the way to use a file fetched by hand."""


def cache_root() -> Path:
    """Where named weights are cached: ``$KERAS_PREACT_CACHE/weights`` when set (and not
    ``off``), else ``$KERAS_HOME/keras-preact/weights``, else ``~/.keras/keras-preact/weights``."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured and configured != "off":
        return Path(configured).expanduser() / "weights"
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "keras-preact" / "weights"


def source_url(entry: WeightsEntry) -> str:
    """The URL the file is fetched from: the mirror's when ``KERAS_PREACT_WEIGHTS_MIRROR`` is set."""
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if not mirror:
        return entry.url
    if "://" not in mirror:
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return f"{mirror.rstrip('/')}/{entry.file_name}"


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hand_fetched(entry: WeightsEntry, path: Path) -> str:
    return (
        f"fetch {entry.url} by hand and pass weights=PATH (the file, converted as it is read), "
        f"or set {MIRROR_VARIABLE} to a folder or server that holds {entry.file_name}"
    )


def _fail(entry: WeightsEntry, url: str, what: str, target: Path) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"cannot fetch {entry.qualified} weights from {url}: {what}; nothing was saved in "
        f"{target.parent}. {_hand_fetched(entry, target)}"
    )


def mismatch(entry: WeightsEntry, path: Path, sha256: str) -> str | None:
    """Why the file at ``path`` (SHA-256 ``sha256``) is not the published one, or None."""
    if entry.hash_kind == "md5":
        found = _md5_of(path)
        if found != entry.file_hash:
            return f"its MD5 is {found}, the source publishes {entry.file_hash}"
    elif entry.hash_kind == "sha256":
        if sha256 != entry.file_hash:
            return f"its SHA-256 is {sha256}, the source publishes {entry.file_hash}"
    elif entry.hash_kind == "sha256-prefix" and not sha256.startswith(entry.file_hash or "?"):
        return f"its SHA-256 is {sha256[:16]}..., the file name says {entry.file_hash}..."
    known = _known_hashes(path.parent.parent).get(entry.qualified)
    if known is not None and known != sha256:
        return (
            f"its SHA-256 is {sha256}, but the file first fetched for {entry.qualified} had "
            f"{known} (the source publishes no hash; a different file is refused)"
        )
    return None


def _known_hashes(root: Path) -> dict[str, str]:
    try:
        return dict(json.loads((root / KNOWN_HASHES).read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _remember(root: Path, entry: WeightsEntry, sha256: str) -> None:
    """Record the SHA-256 of a file whose source publishes none (first fetch wins)."""
    known = _known_hashes(root)
    if entry.hash_kind != "none" or entry.qualified in known:
        return
    known[entry.qualified] = sha256
    tmp = root / f".{KNOWN_HASHES}.{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        os.replace(tmp, root / KNOWN_HASHES)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block; another
    process asking for it waits."""
    with open(path, "a+b") as f:
        if os.name == "nt":  # pragma: no cover (Windows)
            import msvcrt  # Windows only

            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
        else:
            import fcntl  # POSIX only

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if os.name == "nt":  # pragma: no cover
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def check_writable(folder: Path, entry: WeightsEntry) -> None:
    """Create ``folder`` and write a byte there, or raise WeightsUnavailable naming it."""
    probe = folder / f".probe-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"0")
    except OSError as e:
        raise WeightsUnavailable(
            f"cannot cache {entry.qualified} weights in {folder}: {_reason(e)}; set "
            f"{CACHE_VARIABLE} to a writable folder, or {_hand_fetched(entry, folder)}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _reason(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    return e.strerror or str(e)


def fetch(entry: WeightsEntry, *, log=print) -> tuple[Path, str]:
    """The verified file of ``entry`` in the cache, fetched if it is not there: its path and
    SHA-256. Raises WeightsUnavailable (one line) when it cannot be fetched or verified."""
    root = cache_root()
    downloads = root / "downloads"
    check_writable(downloads, entry)
    target = downloads / entry.file_name
    with file_lock(downloads / f".{entry.file_name}.lock"):
        if target.is_file():
            sha256 = sha256_of(target)
            problem = mismatch(entry, target, sha256)
            if problem is None:
                return target, sha256
            log(f"weights: {target} is not the published file ({problem}): fetching it again")
            target.unlink()
        url = source_url(entry)
        sha256 = _download(entry, url, target, log)
        _remember(root, entry, sha256)
        return target, sha256


def _download(entry: WeightsEntry, url: str, target: Path, log) -> str:
    """Download ``url`` to ``target`` through a temporary file, checked; its SHA-256."""
    import keras  # weights imports without Keras (its --help)

    part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    full_hash = entry.file_hash if entry.hash_kind in ("md5", "sha256") else None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(TIMEOUT_SECONDS)
    try:
        try:
            fetched = keras.utils.get_file(
                fname=part.name,
                origin=url,
                file_hash=full_hash,
                hash_algorithm=entry.hash_kind if full_hash else "auto",
                cache_dir=str(target.parent.parent),
                cache_subdir=target.parent.name,
            )
        except ValueError as e:  # get_file's hash check
            if "corrupted" not in str(e):
                raise
            raise _fail(
                entry,
                url,
                f"the file does not match its published {entry.hash_kind} hash "
                f"{entry.file_hash} (a different or damaged file)",
                target,
            ) from None
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EROFS):
                raise _fail(
                    entry, url, f"cannot write {target.parent}: {_reason(e)}", target
                ) from None
            raise _fail(entry, url, _network_reason(e), target) from None
        except (http.client.HTTPException, urllib.error.URLError) as e:
            raise _fail(entry, url, _network_reason(e), target) from None
        except KeyboardInterrupt:
            log(str(_fail(entry, url, "interrupted", target)))
            raise
        except Exception as e:  # get_file turns HTTP and URL errors into a bare Exception
            if not str(e).startswith("URL fetch failure"):
                raise
            raise _fail(entry, url, _fetch_failure(str(e)), target) from None
        if Path(fetched) != part:  # get_file falls back to /tmp when it cannot write
            Path(fetched).unlink(missing_ok=True)
            raise _fail(entry, url, f"cannot write {target.parent}", target)
        sha256 = sha256_of(part)
        problem = mismatch(entry, part, sha256)
        if problem is not None:
            raise _fail(
                entry, url, f"the file fetched is not the published one ({problem})", target
            )
        os.replace(part, target)
        log(f"weights: fetched {url} -> {target}")
        return sha256
    finally:
        socket.setdefaulttimeout(previous)
        part.unlink(missing_ok=True)


def _fetch_failure(message: str) -> str:
    """``URL fetch failure on URL: 404 -- Not Found`` -> ``HTTP 404 Not Found``, in words."""
    detail = message.split(": ", 1)[-1]
    code, _, reason = detail.partition(" -- ")
    if code.strip().isdigit():
        return f"HTTP {code.strip()} {reason}".strip()
    reason = reason.strip()
    if (
        "Name or service not known" in reason
        or "nodename nor servname" in reason
        or ("getaddrinfo" in reason or "Temporary failure in name resolution" in reason)
    ):
        return f"the host name does not resolve (no network or DNS failure: {reason})"
    if "retrieval incomplete" in reason:
        return f"the connection closed before the end of the file ({reason})"
    return f"no connection ({reason or code.strip()})"


def _network_reason(e: BaseException) -> str:
    if isinstance(e, http.client.IncompleteRead | http.client.RemoteDisconnected):
        return f"the connection closed before the end of the file ({type(e).__name__})"
    if isinstance(e, TimeoutError | socket.timeout):
        return f"no answer for {TIMEOUT_SECONDS:.0f} s"
    return f"{type(e).__name__}: {e}"
