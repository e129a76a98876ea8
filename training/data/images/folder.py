"""A folder of images, one subfolder per class: scanned and checked before anything trains on it.

Layouts: ``DIR/train/<class>/...`` and ``DIR/val/<class>/...``; only ``DIR/train/`` with a validation
split held out of it (``val_split``); or DIR itself holding the class folders (evaluation, or training with
a split). Images are JPEG, PNG, BMP, GIF (first frame) or WebP files (by extension, any case) at any depth
below their class folder, of any size; grayscale, palette, 16-bit and CMYK images become 8-bit RGB. Class
indices follow the sorted class folder names.

The scan reports in one ``UserError`` every problem that stops it: class folders without images,
validation classes the training images lack, images that cannot be decoded (refused with their paths, or
left out and counted with ``skip_bad_images``). Files that are not images are listed and left out. Every
image is decoded once by the training feed's decoder (JPEGs at 1/8 scale, which still reads all their
data), so an image that passes never stops training later.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_preact import image_limits
from keras_preact.command_line import UserError
from training.data.images.decode_cache import DecodeCache
from training.data.images.feed import FileImages, decode_check

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
"""File name endings taken for images (any case)."""

SHOWN = 8
"""Paths listed in a message before "and N more"."""

MANY = 20_000
"""From this many images on, the scan says that it is decoding them."""


@dataclass(frozen=True)
class FolderScan:
    """What a scan found: the classes, the checked training and validation images, and what was
    left out (paths relative to ``root``)."""

    root: Path
    class_names: tuple[str, ...]
    train: FileImages
    val: FileImages
    val_source: str  # "val/", "DIR", "split 0.1" or "" (no validation images)
    not_images: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line: classes, images per split, and what was skipped or ignored."""
        line = f"{self.root}: {len(self.class_names)} classes"
        line += f", {len(self.train)} training images" if len(self.train) else ""
        line += f", {len(self.val)} validation images ({self.val_source})" if len(self.val) else ""
        what = "that are not images" if len(self.not_images) > 1 else "that is not an image"
        found = _found(
            (self.skipped, "skipped", "undecodable image", ""),
            (self.not_images, "left out", "file", what),
        )
        return "; ".join([line, *found, *self.notes])


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _listing(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN:,} more" if len(paths) > SHOWN else "")


def _found(*kinds: tuple[Sequence[str], str, str, str]) -> list[str]:
    """A line per ``(paths, verb, noun, what)`` with paths: "skipped 2 linked folders ... (a, b)"."""
    return [
        f"{verb} {' '.join(filter(None, (_count(len(paths), noun), what)))} ({_listing(paths)})"
        for paths, verb, noun, what in kinds
        if paths
    ]


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass
class _Walk:
    """The real directories a scan has reached, so that each is listed once: a link back to one
    (a loop, or into another class) is skipped and recorded (relative to ``root``)."""

    root: Path
    seen: set[tuple[int, int]] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)

    def claim(self, path: Path) -> bool:
        """Whether ``path`` leads to a directory not reached before (now it is)."""
        try:
            info = os.stat(path)
        except OSError:
            return True  # unreadable: os.walk reports nothing below it
        if (info.st_dev, info.st_ino) in self.seen:
            self.skipped.append(_relative(path, self.root))
            return False
        self.seen.add((info.st_dev, info.st_ino))
        return True

    def files(self, folder: Path) -> Iterator[Path]:
        """Every visible file below the class folder ``folder``, sorted, links followed."""
        for current, dirs, files in os.walk(folder, followlinks=True):
            dirs[:] = [
                d for d in sorted(dirs) if not d.startswith(".") and self.claim(Path(current) / d)
            ]
            yield from (Path(current) / name for name in sorted(files) if not name.startswith("."))


@dataclass
class _Listing:
    """The files of one split folder, before decoding."""

    directory: Path
    files: dict[str, list[str]]  # class name -> image paths
    not_images: list[str]
    outside: list[str]  # entries beside the class folders

    def empty(self, root: Path) -> list[str]:  # the class folders without images
        return [_relative(self.directory / n, root) for n, files in self.files.items() if not files]

    def images(self, index: dict[str, int]) -> FileImages:  # labelled by class name
        paths = [p for images in self.files.values() for p in images]
        labels = [index[name] for name, images in self.files.items() for _ in images]
        return FileImages(paths, np.asarray(labels, np.int64))


def _list_splits(root: Path, directories: Sequence[Path | None]) -> tuple[_Walk, list[_Listing]]:
    """The files of the class folders of each of ``directories`` (None: an empty listing)."""
    walk = _Walk(root)
    for directory in dict.fromkeys(d for d in (root, *directories) if d):
        walk.claim(directory)
    return walk, [_list(d, root, walk) if d else _Listing(root, {}, [], []) for d in directories]


def _list(directory: Path, root: Path, walk: _Walk) -> _Listing:
    try:
        entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise UserError(f"cannot read the image folder {directory}: {e.strerror or e}") from None
    folders = {p.name: p for p in entries if p.is_dir()}
    outside = [_relative(p, root) for p in entries if p.name not in folders]
    listing = _Listing(directory, {}, [], outside)
    check_class_names(folders, root)
    claimed = {name: walk.claim(folder) for name, folder in folders.items()}
    for name, folder in folders.items():
        images = listing.files[name] = []
        for path in walk.files(folder) if claimed[name] else ():
            # Only regular files (links followed): reading a pipe or a device never ends.
            if path.name.lower().endswith(IMAGE_EXTENSIONS) and path.is_file():
                images.append(str(path))
            else:
                listing.not_images.append(str(path.relative_to(root)))
    return listing


def _notes(walk: _Walk, listings: Sequence[_Listing]) -> list[str]:
    """Which files lie beside the class folders and which linked folders were skipped."""
    outside = [path for listing in listings for path in listing.outside]
    return _found(
        (outside, "left out", "file", "outside the class folders"),
        (walk.skipped, "skipped", "linked folder", "already in the scan"),
    )


def check_class_names(folders: dict[str, Path], root: Path) -> None:
    """``UserError`` naming a class folder whose name cannot be a line of ``labels.txt`` (a line
    break or other control character, spaces at either end, bytes that are not UTF-8), or two
    names that differ only in case (one class on a case-insensitive disk)."""
    for name in folders:
        if (
            name != name.strip()
            or any(ord(c) < 32 or ord(c) == 127 for c in name)
            or len(name.splitlines()) != 1
            or name.encode("utf-8", "replace").decode() != name  # undecodable bytes
        ):
            raise UserError(
                f"class folder {_relative(folders[name], root)!r} has a name that cannot be a line of labels.txt (a line "
                "break, control character, space at either end or bytes that are not UTF-8): "
                "rename it"
            )
    by_case: dict[str, list[str]] = {}
    for name in folders:
        by_case.setdefault(name.casefold(), []).append(name)
    twins = [names for names in by_case.values() if len(names) > 1]
    if twins:
        raise UserError(
            f"{root}: class folders whose names differ only in case: {', '.join(sorted(twins[0]))}"
            " (one class on a case-insensitive disk): merge or rename them"
        )


def _existing_folder(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise UserError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: expected one subfolder per class")
    return root


def _refuse(root: Path, problems: Sequence[str | list]) -> None:
    """One ``UserError`` naming every problem (empty entries are none)."""
    if problems := [p for p in problems if p]:
        raise UserError(f"{root}: {'; '.join(problems)}")


def scan(
    root: str | os.PathLike,
    *,
    val_split: float | None = None,
    skip_bad_images: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> FolderScan:
    """Scan a training folder (see the module docstring); ``log`` is told when the images to decode
    are many. ``val_split`` (in (0, 1)) holds out that fraction of each class's training images
    (``hold_out``) instead of a ``val/`` folder; without either there are no validation images."""
    root = _existing_folder(root)
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir():
        if val_dir.is_dir():
            raise UserError(
                f"{root} has val/ but no train/: put the training images in {train_dir}"
            )
        train_dir = root
    val_dir = val_dir if train_dir != root and val_dir.is_dir() else None
    if val_split is not None and val_dir is not None:
        raise UserError(
            f"{root} has a val/ folder: use it or --val-split, not both (remove --val-split)"
        )
    walk, (train, val) = _list_splits(root, (train_dir, val_dir))
    one = len(train.files) == 1 and next(iter(train.files))
    empty, unknown = train.empty(root) + val.empty(root), sorted(set(val.files) - set(train.files))
    _refuse(
        root,
        [
            not train.files and f"no class folders in {train_dir}",
            one
            and f"only one class folder in {train_dir} ({one}): a classifier needs at least two classes",
            empty and f"class folders without images: {_listing(empty)}",
            unknown and f"classes in val/ that train/ lacks: {_listing(unknown)}",
        ],
    )
    class_names = tuple(train.files)
    index = {name: i for i, name in enumerate(class_names)}
    (train_images, val_images), skipped = _decodable(
        (train.images(index), val.images(index)), root, skip_bad_images, log
    )
    present = set(train_images.labels.tolist())
    empty = [name for i, name in enumerate(class_names) if i not in present]
    _refuse(root, [empty and f"classes without a decodable training image: {_listing(empty)}"])
    if val_split is not None:
        train_images, val_images = hold_out(train_images, val_split)
    notes = _notes(walk, (train, val))
    if val_dir is not None and (missing := sorted(set(class_names) - set(val.files))):
        notes.append(f"no validation images of {_listing(missing)}")
    source = ("val/" if val_split is None else f"split {val_split:g}") if len(val_images) else ""
    not_images = tuple(train.not_images + val.not_images)
    return FolderScan(
        root, class_names, train_images, val_images, source, not_images, skipped, tuple(notes)
    )


def scan_eval(
    root: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    *,
    skip_bad_images: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> FolderScan:
    """Scan an evaluation folder, ``root/val`` or else ``root`` itself, into ``FolderScan.val``.
    ``class_names`` (the model's, in label order) map the folders to labels (default: the sorted
    folder names); ``log`` as for ``scan``."""
    root = _existing_folder(root)
    directory = root / "val" if (root / "val").is_dir() else root
    walk, (listing,) = _list_splits(root, (directory,))
    if not listing.files:
        raise UserError(f"no class folders in {directory}")
    names = tuple(class_names) if class_names is not None else tuple(listing.files)
    unknown, empty = sorted(set(listing.files) - set(names)), listing.empty(root)
    _refuse(
        root,
        [
            unknown and f"class folders that the model's labels lack: {_listing(unknown)}",
            empty and f"class folders without images: {_listing(empty)}",
        ],
    )
    index = {n: i for i, n in enumerate(names)}
    (images,), skipped = _decodable((listing.images(index),), root, skip_bad_images, log)
    source, notes = "val/" if directory != root else str(root), tuple(_notes(walk, (listing,)))
    no_images = FileImages([], [])
    return FolderScan(
        root, names, no_images, images, source, tuple(listing.not_images), skipped, notes
    )


def hold_out(split: FileImages, fraction: float) -> tuple[FileImages, FileImages]:
    """``(kept, held out)``: ``fraction`` of each class's images (at least one of every class with
    two or more), by a fixed shuffle: the same images whatever the seed of the run."""
    held: list[int] = []
    for label in np.unique(split.labels):
        members = np.flatnonzero(split.labels == label)
        count = round(len(members) * fraction)
        count = min(max(count, 1), len(members) - 1) if len(members) >= 2 else 0
        order = np.random.default_rng([0, int(label)]).permutation(len(members))
        held.extend(members[order[:count]].tolist())
    if not held:
        raise UserError(f"a validation split of {fraction:g} leaves no validation images")
    keep = sorted(set(range(len(split))) - set(held))
    return split.subset(keep), split.subset(sorted(held))


def _decodable(
    splits: Sequence[FileImages], root: Path, skip_bad_images: bool, log: Callable[[str], None]
) -> tuple[list[FileImages], tuple[str, ...]]:
    """``splits`` without the images that cannot be decoded, and those images' paths relative to
    ``root`` (refused unless ``skip_bad_images``). A folder of ``MANY`` images or more remembers
    which decoded (``decode_cache``): the next scan decodes only new or changed files."""
    paths = [f for split in splits for f in split.files]
    bad = (
        _undecodable_remembered(paths, root, log) if len(paths) >= MANY else find_undecodable(paths)
    )
    if not bad:
        return list(splits), ()
    shown = [_relative(Path(p), root) for p in bad]
    oversized = _oversized(bad, root)
    if not skip_bad_images:
        raise UserError(
            f"{_count(len(bad), 'image')} in {root} cannot be decoded: {_listing(shown)}"
            f"{oversized}; fix or remove them, or pass --skip-bad-images to leave them out"
        )
    if oversized:
        log(f"data: skipping images{oversized}")
    drop = set(bad)
    kept = [
        split.subset([i for i, f in enumerate(split.files) if f not in drop]) for split in splits
    ]
    return kept, tuple(shown)


def _oversized(bad: Sequence[str], root: Path) -> str:
    """`` (a.png: 14000 x 14000 pixels, ...: over the limit of N decoded pixels)`` for the images
    of ``bad`` over ``keras_preact.image_limits``, else ``""``."""
    limit, sizes = image_limits.max_pixels(), []
    for path in bad:
        try:
            height, width = (int(n) for n in image_limits.header_size(tf.io.read_file(path)))
        except (tf.errors.OpError, ValueError):
            continue
        if height * width > limit:
            sizes.append(f"{_relative(Path(path), root)}: {width} x {height} pixels")
    variable = image_limits.ENVIRONMENT_VARIABLE
    return (
        f" ({_listing(sizes)}: over the limit of {limit:,} decoded pixels, ${variable})"
        if sizes
        else ""
    )


def _undecodable_remembered(
    paths: Sequence[str], root: Path, log: Callable[[str], None]
) -> list[str]:
    decoder = f"tensorflow {tf.__version__}, at most {image_limits.max_pixels()} pixels"
    checked = DecodeCache(root, decoder, log)
    unchanged, stats = checked.unchanged(paths)
    todo = [p for p in paths if p not in unchanged]
    if unchanged:
        log(f"data: {len(unchanged):,} images in {root} unchanged since they were last checked")
    if todo:
        which = "new or changed images" if unchanged else "images"
        log(f"data: decoding each of the {len(todo):,} {which} in {root} once to check it")
    bad = find_undecodable(todo)
    checked.remember(sorted(set(todo) - set(bad)), stats)
    return bad


def find_undecodable(paths: Sequence[str]) -> list[str]:
    """The paths that the training feed's decoder cannot decode (``feed.decode_check``), in order."""
    if not paths:
        return []
    ds = tf.data.Dataset.from_tensor_slices((list(paths), tf.range(len(paths), dtype=tf.int64)))
    ds = ds.map(decode_check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.ignore_errors().batch(4096)
    seen = np.zeros(len(paths), bool)
    with _quiet_stderr():  # libjpeg prints a line of its own for every corrupt JPEG
        for indices, _ in ds.as_numpy_iterator():
            seen[indices] = True
    return [p for p, ok in zip(paths, seen, strict=True) if not ok]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """What native code writes to stderr (descriptor 2), without the codecs' lines about corrupt
    data."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(True) if not _codec_chatter(line)]
            os.write(2, b"".join(kept))


def _codec_chatter(line: bytes) -> bool:
    markers = (b"Improper call to JPEG library", b"Corrupt JPEG data", b"Premature end of JPEG")
    return line.startswith(b"libpng") or any(marker in line for marker in markers)
