"""A folder of real JPEG photographs-to-be for the image stages, written from the embedded CIFAR-10
sample: every image upscaled to an ImageNet-like size and aspect ratio.

``DIR/train/<class>/`` holds the sample's training images (each ``copies`` times, at different sizes),
``DIR/val/<class>/`` its test images: the layout ``python -m training.images`` and torchvision's
``ImageFolder`` both read. Width and height are drawn independently and uniformly from
``FolderSpec.sides`` (ImageNet's photographs are mostly 500x375 or 500x333, so the shorter side is
usually below the upper end of the papers' [256, 480] scale range and is often enlarged, as here).
The upscaled images are smooth, so Gaussian grain (``FolderSpec.grain`` levels) is added: a JPEG's
entropy decoding costs in proportion to its bytes, and with the grain the files hold about as many
bytes per pixel (~0.55 at quality 90) as ImageNet's training JPEGs (~0.6: 138 GB for 1.28 M images
of about 470x390 on average); without it they would hold about a sixth of that.
The folder is written once per work directory and reused; several processes asking for it at once
wait for the first one to finish writing it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import shutil
from pathlib import Path

import numpy as np

MARKER = "folder.json"
"""Written last, with the spec: a folder without it is incomplete and is written again."""


@dataclasses.dataclass(frozen=True)
class FolderSpec:
    """What the folder holds: ``copies`` of each of the sample's first ``train_per_class``
    training images per class, ``val_per_class`` test images per class; sides in pixels."""

    train_per_class: int = 100
    val_per_class: int = 30
    copies: int = 2
    sides: tuple[int, int] = (300, 500)
    quality: int = 90
    grain: float = 25.0
    seed: int = 0

    @property
    def name(self) -> str:
        """The folder's name in the work directory: one per spec."""
        low, high = self.sides
        return (
            f"jpeg-{self.train_per_class}x{self.copies}-{self.val_per_class}-{low}-{high}"
            f"-q{self.quality}-g{self.grain:g}-s{self.seed}"
        )


def ensure_folder(workdir: str | Path, spec: FolderSpec) -> Path:
    """The folder of ``spec`` in ``workdir``, written first if it is not there yet."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / spec.name
    with _locked(workdir / f"{spec.name}.lock"):
        if _complete(root, spec):
            return root
        if root.exists():
            shutil.rmtree(root)
        tmp = workdir / f"{spec.name}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        stats = write_folder(tmp, spec)
        (tmp / MARKER).write_text(json.dumps({"spec": dataclasses.asdict(spec), **stats}))
        tmp.rename(root)
    return root


def folder_stats(root: Path) -> dict[str, float]:
    """What ``ensure_folder`` recorded: image counts, mean pixels and bytes per training image."""
    data = json.loads((root / MARKER).read_text())
    return {k: v for k, v in data.items() if k != "spec"}


def _complete(root: Path, spec: FolderSpec) -> bool:
    try:
        return json.loads((root / MARKER).read_text())["spec"] == json.loads(
            json.dumps(dataclasses.asdict(spec))
        )
    except (OSError, ValueError, KeyError):
        return False


@contextlib.contextmanager
def _locked(path: Path):
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_folder(root: Path, spec: FolderSpec) -> dict[str, float]:
    """Write ``root/train`` and ``root/val`` (see the module docstring); returns the number of
    training images and their mean width, height and file size."""
    from PIL import Image

    from keras_preact.datasets import load_sample

    sample = load_sample()
    rng = np.random.default_rng(spec.seed)
    low, high = spec.sides
    sizes, nbytes = [], []
    for split, x, y, per_class, copies in (
        ("train", sample.x_train, sample.y_train, spec.train_per_class, spec.copies),
        ("val", sample.x_test, sample.y_test, spec.val_per_class, 1),
    ):
        for label, name in enumerate(sample.label_names):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, index in enumerate(np.flatnonzero(y == label)[:per_class]):
                for copy in range(copies):
                    width, height = (int(v) for v in rng.integers(low, high + 1, size=2))
                    image = Image.fromarray(x[index]).resize((width, height), Image.BICUBIC)
                    if spec.grain:
                        noise = rng.standard_normal((height, width, 3), np.float32)
                        noisy = np.asarray(image, np.float32) + spec.grain * noise
                        image = Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))
                    path = folder / f"{i:04d}-{copy}.jpg"
                    image.save(path, "JPEG", quality=spec.quality)
                    if split == "train":
                        sizes.append((width, height))
                        nbytes.append(path.stat().st_size)
    return {
        "train_images": len(sizes),
        "mean_width": round(float(np.mean([w for w, _ in sizes])), 1),
        "mean_height": round(float(np.mean([h for _, h in sizes])), 1),
        "mean_kib": round(float(np.mean(nbytes)) / 1024, 1),
    }
