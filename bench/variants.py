"""Profiling variants of the training measurement: where does the step time go?

Each variant changes one thing against the default measurement of the same implementation and
model, and is recorded with ``variant`` set, so ``report`` can show before/after ratios:

* ``eigen``: ``TF_ENABLE_ONEDNN_OPTS=0``, TensorFlow's own default on CPUs other than some Intel
  ones (e.g. AMD, AVX2-only): convolutions and their gradients on Eigen instead of oneDNN. Every
  Keras worker imports ``training``, which turns oneDNN on (see ``training/__init__.py``), so this is
  the "before" of that change, for both Keras implementations.
* ``xla``: ``jit_compile`` on (XLA on the CPU).
* ``interop-1``: ``TF_NUM_INTEROP_THREADS=1``: one op at a time instead of independent ops (e.g. a
  convolution's input and filter gradients) sharing the intra-op threads.
* ``jax``: the JAX backend (XLA) instead of TensorFlow.
* ``keras-bn``: keras-preact with Keras' own (unfused) batch-norm training path
  (``keras_preact.use_fused_batch_norm(model, enabled=False)``): the "before" of the fused
  TensorFlow kernel.
* ``synthetic-data``: one batch repeated, no input pipeline (keras-preact only): the pipeline's cost.
* ``no-augment``: the pipeline without pad/crop/flip (keras-preact only): the augmentation's cost.
* ``channels-last``: PyTorch (eager) with ``torch.channels_last`` tensors (its oneDNN-friendly layout).
* ``bfloat16``: mixed precision (bfloat16 compute, float32 variables) for every implementation:
  Keras' ``mixed_bfloat16`` policy through each pipeline's own option, PyTorch's bfloat16 autocast.
  On a CPU with AVX-512 BF16 oneDNN runs the convolutions on its bfloat16 kernels; without it
  they are emulated and slower. Not the papers' float32 recipe: a ratio for information.

Environment variables are set for the worker process, before any framework is imported. With the
default ``--pairing turns`` a variant is one more contender of its model's turn group, so its ratio
to the default is a median of per-round ratios of windows timed in alternation (`bench.turns`).
"""

from __future__ import annotations

import dataclasses

KERAS_IMPLS = ("keras-preact", "plain-keras")
# torch.compile before eager PyTorch: a turn group that has room for only some of the variants
# then times keras-preact's next to the compiled peer's.
ALL_IMPLS = (*KERAS_IMPLS, "pytorch-compile", "pytorch")


@dataclasses.dataclass(frozen=True)
class Variant:
    """What a variant applies to and the environment its worker needs."""

    impls: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    precision: str | None = None  # replaces the run's --precision for this contender


VARIANTS: dict[str, Variant] = {
    "eigen": Variant(KERAS_IMPLS, (("TF_ENABLE_ONEDNN_OPTS", "0"),)),
    "xla": Variant(KERAS_IMPLS),
    "interop-1": Variant(KERAS_IMPLS, (("TF_NUM_INTEROP_THREADS", "1"),)),
    "jax": Variant(KERAS_IMPLS, (("KERAS_BACKEND", "jax"),)),
    "keras-bn": Variant(("keras-preact",)),
    "synthetic-data": Variant(("keras-preact",)),
    "no-augment": Variant(("keras-preact",)),
    "channels-last": Variant(("pytorch",)),
    "bfloat16": Variant(ALL_IMPLS, precision="bfloat16"),
}


def get_variant(name: str) -> Variant:
    """The variant called ``name``; ValueError names the allowed ones."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
    return VARIANTS[name]
