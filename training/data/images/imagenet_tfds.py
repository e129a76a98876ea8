"""tfds ``imagenet2012``, prepared once by tfds from the archives in its manual folder, read as encoded JPEGs.

tfds cannot download ImageNet: ``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar`` (from
https://image-net.org) go into the manual folder (``--manual-dir``, default
``<data dir>/downloads/manual``). When the dataset is not prepared and the archives are not there, this
stops at once with one line; tfds is never asked to download anything.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from keras_preact.command_line import UserError
from training.data.images.feed import RecordImages
from training.data.tf_shared import open_builder

NAME = "imagenet2012"
ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
"""What tfds' imagenet2012 builder reads from the manual folder."""


def load_imagenet(data_dir: str | None, manual_dir: str | None):
    """``(train, validation, label names, origin)``: the two splits as
    ``training.data.images.feed.RecordImages`` of encoded JPEGs, prepared first when needed."""
    import tensorflow_datasets as tfds  # imported here: slow to import, and only this source needs it

    builder, root, prepared = open_builder(NAME, data_dir)
    if not prepared:
        manual = Path(manual_dir).expanduser() if manual_dir else root / "downloads" / "manual"
        missing = [name for name in ARCHIVES if not (manual / name).is_file()]
        if missing:
            raise UserError(
                f"{NAME} is not prepared in the tfds data dir {root}, and its manual folder "
                f"{manual} lacks {' and '.join(missing)}: download them from "
                "https://image-net.org (after registering) into that folder, or point "
                "--manual-dir at them; tfds then prepares the dataset once, offline"
            )
        config = tfds.download.DownloadConfig(manual_dir=str(manual), try_download_gcs=False)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as e:  # tfds raises many kinds; all mean the archives are unusable
            raise UserError(
                f"tfds could not prepare {NAME} from {manual} ({type(e).__name__}: {e})"
            ) from None
    splits = []
    for split in ("train", "validation"):
        try:
            ds = builder.as_dataset(
                split=split,
                shuffle_files=split == "train",
                read_config=tfds.ReadConfig(shuffle_seed=0, shuffle_reshuffle_each_iteration=False),
                decoders={"image": tfds.decode.SkipDecoding()},
            )
        except (tf.errors.OpError, OSError, ValueError, KeyError) as e:
            raise UserError(
                f"tfds could not read {NAME} {split} from {builder.data_dir}: {e}"
            ) from None
        count = int(ds.cardinality())
        if count < 0:
            count = builder.info.splits[split].num_examples
        splits.append(RecordImages(ds.map(lambda ex: (ex["image"], ex["label"])), count))
    names = tuple(builder.info.features["label"].names)
    return splits[0], splits[1], names, f"tfds {NAME} in {builder.data_dir}"
