"""What a keras-tuner search may choose (``python -m training.tune``'s search space), as plain data:
the command's ``--help`` shows its defaults before Keras loads; ``training.experiments.search`` runs
the search."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What the tuner may choose. Ranges are sampled log-uniformly; lists are choices."""

    lr: tuple[float, float] = (0.02, 0.4)
    weight_decay: tuple[float, float] = (1e-5, 1e-3)
    batch_sizes: tuple[int, ...] = (64, 128, 256)
    models: tuple[str, ...] = ("resnet20v1",)
    units: tuple[str, ...] = ()
    widths: tuple[int, ...] = (1,)
