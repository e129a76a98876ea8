"""``python -m training.images``: train or fine-tune a ResNet on a folder of images or on ImageNet
(a ``training.command_line.Command``: its options become the ``TrainConfig`` the pipeline trains)."""

from __future__ import annotations

from functools import partial

from training import options
from training.command_line import Command, train

EXAMPLES = """\
examples:
  # fine-tune a trained ResNet-50 (e.g. converted from torchvision) on your own folder of images
  python -m training.images --data ~/flowers --weights resnet50.keras --recipe finetune \\
      --freeze stage2 --output runs/flowers

  # the v1 paper's ImageNet recipe for ResNet-50, from tfds imagenet2012 (prepared offline from
  # ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in ~/imagenet), on every local GPU
  python -m training.images --data tfds:imagenet2012 --manual-dir ~/imagenet --model resnet50v1 \\
      --strategy mirrored --mixed-precision bfloat16 --output runs/r50

  # ResNet-200 v2 with the v2 paper's scale and aspect-ratio augmentation, lr divided on plateaus
  python -m training.images --data /data/imagenet --model resnet200v2 --augmentation inception \\
      --schedule plateau --strategy mirrored --output runs/r200

  # a small network from scratch on a folder without val/: 10 % of each class held out
  python -m training.images --data ~/photos --model resnet18v1 --image-size 128 --val-split 0.1 \\
      --epochs 30 --batch-size 64

the checks of DIR, outputs and resuming: docs/images.md

test a trained network with the papers' protocols:
  python -m training.evaluate --model runs/flowers/best.keras --data ~/flowers --protocol 10crop
"""

COMMAND = Command(
    "images",
    description="Train a ResNet of He et al. (2015, 2016) on a folder of images (one subfolder "
    "per class) or on ImageNet, from scratch with the papers' recipe or fine-tuned from a "
    "trained .keras network.",
    examples=EXAMPLES,
    groups=(
        options.add_image_data,
        partial(options.add_model_data, cifar=False, default_model="resnet50v1"),
        partial(options.add_recipe, family="images"),
        options.add_distribution,
        options.add_run,
    ),
    stage=train,
)
build_parser, main = COMMAND.build_parser, COMMAND.main

if __name__ == "__main__":
    COMMAND.exit()
