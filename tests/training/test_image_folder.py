"""training.data.images.folder: the scan of a real-image folder and its one-line report of what is wrong."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from image_helpers import add_bad_files, write_folder
from PIL import Image

from keras_preact.command_line import UserError
from training.data.images import decode_cache as checked_images
from training.data.images import feed as feed_images
from training.data.images import folder as image_folder
from training.data.images.folder import hold_out, scan, scan_eval


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images") / "photos")


@pytest.fixture
def copy(folder, tmp_path):
    """A copy of the folder this test may spoil."""
    return shutil.copytree(folder, tmp_path / "photos")


def test_scan_finds_classes_and_splits_in_label_order(folder):
    found = scan(folder)
    assert found.class_names == tuple(sorted(p.name for p in (folder / "train").iterdir()))
    assert len(found.train) == 60 and len(found.val) == 20 and found.val_source == "val/"
    assert np.bincount(found.train.labels).tolist() == [6] * 10
    for path, label in zip(found.train.files, found.train.labels, strict=True):
        assert f"/train/{found.class_names[label]}/" in path
    assert found.summary().endswith("10 classes, 60 training images, 20 validation images (val/)")


def test_every_format_and_mode_decodes_to_the_same_rgb_as_pil(folder):
    """JPEG, PNG, BMP, GIF, WebP, grayscale and CMYK files: 8-bit RGB of the right size, the same
    pixels as Pillow's conversion (up to JPEG decoder rounding)."""
    cmyk = sorted((folder / "train" / "automobile").iterdir())[0]
    files = [*sorted((folder / "train" / "airplane").iterdir()), cmyk]
    modes = set()
    for path in files:
        reference = Image.open(path)
        modes.add((reference.format, reference.mode))
        expected = np.asarray(reference.convert("RGB"), np.int32)
        got = feed_images.decode(tf.io.read_file(str(path))).numpy()
        assert got.dtype == np.uint8 and got.shape == expected.shape, path
        difference = np.abs(got.astype(np.int32) - expected)
        if reference.format == "JPEG":  # two JPEG decoders: rounding and chroma upsampling
            assert difference.mean() < 2 and difference.max() <= 10, path
        else:
            assert difference.max() == 0, path
    assert {("JPEG", "CMYK"), ("JPEG", "L"), ("GIF", "P"), ("BMP", "RGB"), ("WEBP", "RGB")} <= modes


def test_undecodable_images_are_refused_with_their_paths_or_skipped_and_counted(copy):
    bad = add_bad_files(copy)
    with pytest.raises(UserError) as refused:
        scan(copy)
    message = str(refused.value)
    assert message.startswith(f"2 images in {copy} cannot be decoded: ")
    assert all(path in message for path in bad) and "--skip-bad-images" in message

    found = scan(copy, skip_bad_images=True)
    assert found.skipped == tuple(bad)
    assert found.not_images == ("train/dog/notes.txt",)  # listed, never an image
    assert len(found.train) == 60 and len(found.val) == 20
    assert not any(
        p.endswith(("broken.jpg", "garbage.png", "notes.txt")) for p in found.train.files
    )
    summary = found.summary()
    assert "skipped 2 undecodable images (train/cat/broken.jpg, val/dog/garbage.png)" in summary
    assert "left out 1 file that is not an image (train/dog/notes.txt)" in summary


def test_folder_problems_are_reported_together_in_one_line(copy):
    shutil.rmtree(copy / "train" / "frog")
    (copy / "train" / "frog").mkdir()  # an empty class folder
    for image in (copy / "train" / "ship").iterdir():
        image.unlink()
    (copy / "train" / "ship" / "readme.txt").write_text("no images here, only a note")
    (copy / "val" / "unicorn").mkdir()
    shutil.copy(next((copy / "val" / "cat").iterdir()), copy / "val" / "unicorn")
    with pytest.raises(UserError) as problems:
        scan(copy)
    message = str(problems.value)
    assert "\n" not in message
    assert "class folders without images: train/frog, train/ship" in message
    assert "classes in val/ that train/ lacks: unicorn" in message


def test_layouts_and_validation_splits(folder, tmp_path):
    assert "--val-split" in _error(lambda: scan(folder, val_split=0.2))  # val/ already there
    train_only = shutil.copytree(folder / "train", tmp_path / "flat")  # DIR holds the classes
    found = scan(train_only, val_split=0.34)
    assert len(found.val) == 20 and len(found.train) == 40 and found.val_source == "split 0.34"
    assert "linked folder" not in found.summary()  # DIR is the root and holds the classes
    assert np.bincount(found.val.labels).tolist() == [2] * 10  # every class, 2 of 6
    again = scan(train_only, val_split=0.34)
    assert found.val.files == again.val.files  # the same images whatever the run's seed
    assert not set(found.val.files) & set(found.train.files)
    assert "does not exist" in _error(lambda: scan(tmp_path / "missing"))
    assert "no class folders" in _error(lambda: scan(tmp_path / "flat" / "cat"))
    kept, held = hold_out(found.train, 0.5)
    assert len(held) == 20 and len(kept) == 20


def test_evaluation_scan_maps_folders_to_the_networks_labels(folder):
    names = tuple(reversed(sorted(p.name for p in (folder / "val").iterdir())))
    found = scan_eval(folder, names)
    assert found.val_source == "val/" and len(found.val) == 20
    for path, label in zip(found.val.files, found.val.labels, strict=True):
        assert f"/val/{names[label]}/" in path
    assert "class folders that the model's labels lack: truck" in _error(
        lambda: scan_eval(folder, names[1:])
    )
    own = scan_eval(folder / "train")  # DIR itself holds the class folders
    assert len(own.val) == 60 and own.class_names == tuple(reversed(names))
    assert not own.notes, own.notes


def _error(call) -> str:
    with pytest.raises(UserError) as error:
        call()
    return str(error.value)


def test_a_png_in_a_jpeg_name_is_an_image(copy):
    # Files named by what their extension says, decoded by what they are (tf.io.decode_image).
    path = copy / "train" / "cat" / "really-a-png.jpg"
    out = io.BytesIO()
    Image.new("RGB", (50, 40), (10, 200, 30)).save(out, "PNG")
    path.write_bytes(out.getvalue())
    found = scan(copy)
    assert str(path) in found.train.files


def test_a_large_folder_remembers_which_images_decoded(copy, tmp_path, monkeypatch):
    """From ``MANY`` images on, a scan decodes only the images it has not seen decode before at
    their size and mtime: a resumed run does not check ImageNet again."""
    monkeypatch.setattr(image_folder, "MANY", 50)  # the folder's 82 images count as many
    cache = tmp_path / "cache"
    monkeypatch.setenv("KERAS_PREACT_CACHE", str(cache))
    bad = add_bad_files(copy)
    decoded: list[list[str]] = []
    real = image_folder.find_undecodable
    monkeypatch.setattr(
        image_folder, "find_undecodable", lambda paths: decoded.append(list(paths)) or real(paths)
    )
    lines: list[str] = []

    def scan_it():
        lines.clear()
        return scan(copy, skip_bad_images=True, log=lines.append)

    first = scan_it()
    everything = [*first.train.files, *first.val.files]
    assert len(decoded[-1]) == len(everything) + 2 and first.skipped == tuple(bad)
    assert lines == [f"data: decoding each of the 82 images in {copy} once to check it"]
    assert (cache / checked_images.FILE_NAME).is_file()

    again = scan_it()  # only the two bad images, which are never remembered, are decoded again
    assert [image_folder._relative(Path(p), copy) for p in decoded[-1]] == bad
    assert (again.train.files, again.val.files, again.skipped) == (
        first.train.files,
        first.val.files,
        first.skipped,
    )
    assert lines[0] == f"data: 80 images in {copy} unchanged since they were last checked"

    changed = Path(first.train.files[0])  # spoilt since: decoded again, and found
    changed.write_bytes(b"not an image any more")
    spoilt = scan_it()
    assert str(changed) in decoded[-1] and len(decoded[-1]) == 3
    assert image_folder._relative(changed, copy) in spoilt.skipped
    assert "decoding each of the 3 new or changed images" in lines[1]

    # A damaged cache is moved aside and started afresh; "off" keeps none.
    (cache / checked_images.FILE_NAME).write_bytes(b"not a database")
    scan_it()
    assert len(decoded[-1]) == len(everything) + 2
    assert "was damaged; moved aside to checked-images.sqlite.damaged-" in lines[0]
    assert len(list(cache.glob("*.damaged-*"))) == 1
    scan_it()
    assert len(decoded[-1]) == 3
    monkeypatch.setenv("KERAS_PREACT_CACHE", checked_images.OFF)
    scan_it()
    assert len(decoded[-1]) == len(everything) + 2


def test_an_unusable_scan_cache_costs_a_line_not_the_scan(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(image_folder, "MANY", 50)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("KERAS_PREACT_CACHE", str(blocker / "cache"))
    lines: list[str] = []
    found = scan(folder, log=lines.append)
    assert len(found.train) == 60
    assert lines[0].startswith(f"data: cannot use the scan cache {blocker}/cache/")
