"""The named weights keras-preact fetches: one row per published file, facts as the sources state them.

Each row copies what the source's own code or page publishes (a test checks the torchvision,
timm and keras.applications rows against the installed packages):

* torchvision: ``torchvision.models.ResNet{N}_Weights`` — the URL, the first 8 hex digits of the
  file's SHA-256 in its name (what ``torch.hub`` checks), ``_metrics["ImageNet-1K"]["acc@1"]``.
* keras.applications: ``keras/src/applications/resnet.py`` — ``BASE_WEIGHTS_PATH`` and the MD5 in
  ``WEIGHTS_HASHES``; top-1 from the table at keras.io/api/applications.
* timm: ``timm.models.get_pretrained_cfg`` — the Hugging Face repository (``hf_hub_id``), the
  mean and standard deviation, the licence; top-1 from timm's ``results-imagenet.csv``.
* akamaster/pytorch_resnet_cifar10 and chenyaofo/pytorch-cifar-models: their READMEs (URL, test
  error or accuracy), trainers (input normalisation) and model code (shortcuts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

DATASETS = ("imagenet", "cifar10", "cifar100")
"""The dataset names ``weights=`` takes (each picks the entry that fits the model's arguments)."""


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One published weights file and what it fits.

    Attributes:
        model: the keras-preact model it holds (``MODELS`` key, e.g. ``"resnet50v1"``).
        source: who publishes it (``"torchvision"``, ``"keras.applications"``, ``"timm"``,
            ``"akamaster"``, ``"chenyaofo"``).
        tag: the source's own name for these weights (``"IMAGENET1K_V2"``, ``"a1h_in1k"``).
        dataset: what it was trained on, the name ``weights=`` takes (``DATASETS``).
        url: where the source publishes the file.
        file_name: the name it is stored under in the cache and looked up under on a mirror.
        file_hash: the integrity data the source publishes, as published: a full MD5 or
            SHA-256, the SHA-256 prefix of a file name, or ``None`` where it publishes none.
        hash_kind: ``"md5"``, ``"sha256"``, ``"sha256-prefix"`` or ``"none"``.
        options: the architecture options it needs besides the model's identity
            (``{"bottleneck_stride": "3x3"}``, ``{"projection": "B"}``).
        classes: classes of its classifier.
        preprocessing: the ``keras_preact.DATASET_STATS`` key of the normalisation it was
            trained with.
        published: the accuracy as the source states it (not measured by keras-preact).
        licence: the licence note.
        notes: anything else a user needs (evaluation size, revision pinned).
    """

    model: str
    source: str
    tag: str
    dataset: str
    url: str
    file_name: str
    file_hash: str | None
    hash_kind: str
    options: Mapping[str, Any]
    classes: int
    preprocessing: str
    published: str
    licence: str
    notes: str = ""

    @property
    def family(self) -> str:
        """``"imagenet"`` or ``"cifar"``: the network family it holds."""
        return "imagenet" if self.dataset == "imagenet" else "cifar"

    @property
    def version(self) -> str:
        """``"v1"`` or ``"v2"``."""
        return self.model[-2:]

    @property
    def depth(self) -> int:
        """The network's depth, from ``model``."""
        return int(self.model.removeprefix("resnet")[:-2])

    @property
    def unit(self) -> str:
        """The residual unit: ImageNet ResNet-50 and deeper use bottlenecks; the CIFAR files here
        are all basic-unit networks."""
        return "bottleneck" if self.family == "imagenet" and self.depth >= 50 else "basic"

    @property
    def qualified(self) -> str:
        """The name that picks exactly this entry, e.g. ``"torchvision:IMAGENET1K_V1"``."""
        return f"{self.source}:{self.tag}"


# ImageNet's terms of access allow non-commercial research and education; the sources' licences
# cover their code and files.
_IMAGENET = "trained on ImageNet-1k (its terms: non-commercial research and education)"
_TORCHVISION_LICENCE = f"BSD-3-Clause (torchvision); {_IMAGENET}"
_KERAS_LICENCE = f"MIT (He et al.'s Caffe models, ported by Keras); {_IMAGENET}"
_TIMM_LICENCE = f"apache-2.0 (timm's pretrained config); {_IMAGENET}"
_AKAMASTER_LICENCE = "BSD-2-Clause (akamaster/pytorch_resnet_cifar10)"
_CHENYAOFO_LICENCE = "BSD-3-Clause (chenyaofo/pytorch-cifar-models)"

_TORCHVISION = "https://download.pytorch.org/models/"
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
_CHENYAOFO = "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/"


def _frozen(options: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(options or {}))


def _torchvision(depth: int, tag: str, digest: str, top1: str, stride: bool) -> WeightsEntry:
    file_name = f"resnet{depth}-{digest}.pth"
    v2 = tag == "IMAGENET1K_V2"
    return WeightsEntry(
        model=f"resnet{depth}v1",
        source="torchvision",
        tag=tag,
        dataset="imagenet",
        url=_TORCHVISION + file_name,
        file_name=file_name,
        file_hash=digest,
        hash_kind="sha256-prefix",
        options=_frozen({"bottleneck_stride": "3x3"} if stride else None),
        classes=1000,
        preprocessing="imagenet",
        published=f"ImageNet top-1 {top1} %",
        licence=_TORCHVISION_LICENCE,
        notes="evaluated at 224 after a resize to " + ("232" if v2 else "256"),
    )


def _keras(depth: int, md5: str, top1: str) -> WeightsEntry:
    file_name = f"resnet{depth}_weights_tf_dim_ordering_tf_kernels.h5"
    return WeightsEntry(
        model=f"resnet{depth}v1",
        source="keras.applications",
        tag="imagenet",
        dataset="imagenet",
        url=_KERAS + file_name,
        file_name=file_name,
        file_hash=md5,
        hash_kind="md5",
        options=_frozen({"bottleneck_stride": "1x1"}),
        classes=1000,
        preprocessing="imagenet_caffe",
        published=f"ImageNet top-1 {top1} %",
        licence=_KERAS_LICENCE,
        notes="the original ResNet of He et al. (stride on the first 1x1 convolution)",
    )


def _timm(depth: int, revision: str, top1: str) -> WeightsEntry:
    repo = f"timm/resnetv2_{depth}.a1h_in1k"
    pinned = revision != "main"
    return WeightsEntry(
        model=f"resnet{depth}v2",
        source="timm",
        tag="a1h_in1k",
        dataset="imagenet",
        url=f"https://huggingface.co/{repo}/resolve/{revision}/model.safetensors",
        file_name=f"resnetv2_{depth}.a1h_in1k.safetensors",
        file_hash=None,
        hash_kind="none",
        options=_frozen(),
        classes=1000,
        preprocessing="imagenet_inception",
        published=f"ImageNet top-1 {top1} % (at 288x288)",
        licence=_TIMM_LICENCE,
        notes=(
            f"Hugging Face {repo}; "
            + (f"revision {revision[:7]} pinned; " if pinned else "")
            + "no hash published: its SHA-256 is recorded on first fetch"
        ),
    )


def _akamaster(depth: int, digest: str, error: str) -> WeightsEntry:
    file_name = f"resnet{depth}-{digest}.th"
    return WeightsEntry(
        model=f"resnet{depth}v1",
        source="akamaster",
        tag="cifar10",
        dataset="cifar10",
        url=_AKAMASTER + file_name,
        file_name=file_name,
        file_hash=digest,
        hash_kind="sha256-prefix",
        options=_frozen({"projection": "A"}),
        classes=10,
        preprocessing="imagenet",
        published=f"CIFAR-10 test error {error} %",
        licence=_AKAMASTER_LICENCE,
        notes="option A shortcuts, as the paper's; trained on ImageNet-normalised CIFAR-10",
    )


def _chenyaofo(dataset: str, depth: int, digest: str, top1: str) -> WeightsEntry:
    file_name = f"{dataset}_resnet{depth}-{digest}.pt"
    return WeightsEntry(
        model=f"resnet{depth}v1",
        source="chenyaofo",
        tag=dataset,
        dataset=dataset,
        url=_CHENYAOFO + file_name,
        file_name=file_name,
        file_hash=digest,
        hash_kind="sha256-prefix",
        options=_frozen({"projection": "B"}),
        classes=100 if dataset == "cifar100" else 10,
        preprocessing=f"{dataset}_chenyaofo",
        published=f"{'CIFAR-100' if dataset == 'cifar100' else 'CIFAR-10'} top-1 {top1} %",
        licence=_CHENYAOFO_LICENCE,
        notes="option B (projection) shortcuts where the shape changes",
    )


# Within a model and dataset, the first entry that fits the model's arguments is chosen.
ENTRIES: tuple[WeightsEntry, ...] = (
    _torchvision(18, "IMAGENET1K_V1", "f37072fd", "69.758", stride=False),
    _torchvision(34, "IMAGENET1K_V1", "b627a593", "73.314", stride=False),
    _keras(50, "2cb95161c43110f7111970584f804107", "74.9"),
    _torchvision(50, "IMAGENET1K_V2", "11ad3fa6", "80.858", stride=True),
    _torchvision(50, "IMAGENET1K_V1", "0676ba61", "76.130", stride=True),
    _keras(101, "f1aeb4b969a6efcfb50fad2f0c20cfc5", "76.4"),
    _torchvision(101, "IMAGENET1K_V2", "cd907fc2", "81.886", stride=True),
    _torchvision(101, "IMAGENET1K_V1", "63fe2227", "77.374", stride=True),
    _keras(152, "100835be76be38e30d865e96f2aaae62", "76.6"),
    _torchvision(152, "IMAGENET1K_V2", "f82ba261", "82.284", stride=True),
    _torchvision(152, "IMAGENET1K_V1", "394f9c45", "78.312", stride=True),
    _timm(50, "dcfd4fecb72889c1ce9fd9f7e5b75f8043889864", "81.398"),
    _timm(101, "main", "83.002"),
    _akamaster(20, "12fca82f", "8.27"),
    _akamaster(32, "d509ac18", "7.37"),
    _akamaster(44, "014dd654", "6.90"),
    _akamaster(56, "4bfd9763", "6.61"),
    _akamaster(110, "1d1ed7c2", "6.32"),
    _akamaster(1202, "f3b1deed", "6.18"),
    _chenyaofo("cifar10", 20, "4118986f", "92.60"),
    _chenyaofo("cifar10", 32, "ef93fc4d", "93.53"),
    _chenyaofo("cifar10", 44, "2a3cabcb", "94.01"),
    _chenyaofo("cifar10", 56, "187c023a", "94.37"),
    _chenyaofo("cifar100", 20, "23dac2f1", "68.83"),
    _chenyaofo("cifar100", 32, "84213ce6", "70.16"),
    _chenyaofo("cifar100", 44, "ffe32858", "71.63"),
    _chenyaofo("cifar100", 56, "f2eff4c8", "72.63"),
)
