"""Hostile input to the training commands: symlink loops, one-class folders, class names that
break labels.txt, models without input normalisation, reproduce's table files, misleading
messages, the recipe summary line, and other shapes of the same mistakes. Each case: one
``error:`` line (exit 2) and nothing written, or the right result."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from image_helpers import write_folder

from keras_preact.cli import UserError
from training.image_folder import scan, scan_eval


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images") / "photos")


@pytest.fixture
def copy(folder, tmp_path):
    """A copy of the folder this test may spoil."""
    return shutil.copytree(folder, tmp_path / "photos")


def _error(call) -> str:
    with pytest.raises(UserError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# The image-folder walk


def test_symlink_loops_are_visited_once_and_said(copy, tmp_path):
    os.symlink(copy / "train", copy / "train" / "cat" / "loop")  # back to train/
    os.symlink(copy / "train" / "dog", copy / "train" / "cat" / "dogs")  # another class
    os.symlink(copy / "val", copy / "val" / "dog" / "up")
    # A link to images elsewhere is followed: users symlink their data.
    extra = tmp_path / "more-cats"
    shutil.copytree(copy / "val" / "cat", extra)
    os.symlink(extra, copy / "train" / "cat" / "more")
    found = scan(copy)
    assert len(found.train) == 62 and len(found.val) == 20
    assert np.bincount(found.train.labels).tolist() == [6, 6, 6, 8, 6, 6, 6, 6, 6, 6]
    cat = found.class_names.index("cat")
    for path, label in zip(found.train.files, found.train.labels, strict=True):
        assert (label == cat) == ("/train/cat/" in path), path
    summary = found.summary()
    assert "skipped 3 linked folders already in the scan" in summary
    assert "train/cat/loop" in summary and "train/cat/dogs" in summary
    evaluated = scan_eval(copy)
    assert len(evaluated.val) == 20
    assert "val/dog/up" in evaluated.summary()


def test_one_class_is_refused(copy):
    for name in os.listdir(copy / "train"):
        if name != "cat":
            shutil.rmtree(copy / "train" / name)
            shutil.rmtree(copy / "val" / name)
    assert "a classifier needs at least two classes" in _error(lambda: scan(copy))


@pytest.mark.parametrize("name", ["two\nlines", "tab\tcat", " cat", "cat ", "cr\rcat", "x\u2028y"])
def test_class_names_that_break_labels_txt_are_refused(copy, name):
    shutil.copytree(copy / "train" / "cat", copy / "train" / name)
    message = _error(lambda: scan(copy))
    assert repr(f"train/{name}") in message and "labels.txt" in message


def test_class_names_differing_only_in_case_are_refused(copy):
    shutil.copytree(copy / "train" / "cat", copy / "train" / "Cat")
    assert "differ only in case: Cat, cat" in _error(lambda: scan(copy))


def test_files_beside_the_class_folders_are_said(copy):
    shutil.copy(next((copy / "train" / "cat").iterdir()), copy / "train" / "stray.jpg")
    (copy / "train" / "unicorn").write_text("a class folder that is a file")
    found = scan(copy)
    assert len(found.train) == 60
    assert "left out 2 files outside the class folders (train/stray.jpg, train/unicorn)" in (
        found.summary()
    )
