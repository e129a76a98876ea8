"""Every named choice of the training commands, in one place: what their options accept.

The parsers (``training.options``, ``--help``), the checks of the stages that own each choice and the
documentation read these tuples. Plain Python: ``--help`` and usage errors answer before Keras or
TensorFlow loads.
"""

from __future__ import annotations

RECIPES = ("paper", "fast", "demo")
"""CIFAR recipes (``training.recipes.RECIPES``)."""

IMAGE_RECIPES = ("paper", "finetune")
"""Recipes of a run on images (``training.recipes.IMAGE_RECIPES``)."""

SCHEDULES = ("step", "cosine", "plateau")
"""Learning-rate schedule shapes: the papers' step decay, cosine decay (after a linear warm-up), or a
division by ``lr_decay_factor`` whenever the validation error stops improving."""

FREEZE_STAGES = ("none", "stem", "stage1", "stage2", "stage3", "stage4", "backbone")
"""Values of ``freeze`` (fine-tuning): train everything, or freeze the network up to and including a
stage (``backbone``: everything but the new classifier)."""

GATED_WARMUP_MODES = ("auto", "on", "off")
"""``auto``: the error-gated warm-up only for the models the papers used it for
(``keras_preact.ModelInfo.paper_warmup``)."""

AUGMENTATIONS = ("scale", "inception", "none")
"""Augmentations of a run on images (``training.data.images.feed.Augment``)."""

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")
"""Values of ``--strategy``."""

PRECISIONS = ("float32", "bfloat16", "float16")
"""Values of ``--mixed-precision`` (float32: no mixed precision)."""

JIT_MODES = ("auto", "on", "off")
"""Values of ``--jit-compile``: ``auto`` is Keras' choice (XLA on JAX and on TensorFlow GPUs)."""

VERBOSITY = ("auto", "bar", "line", "quiet")
"""``auto``: Keras progress bars on a terminal, one line per epoch otherwise."""

PROTOCOLS = ("center", "10crop", "multiscale")
"""The papers' testing protocols (``training.evaluation.protocols``)."""

TUNERS = ("random", "hyperband", "bayesian")
"""Values of ``--tuner``: keras-tuner's RandomSearch, Hyperband and BayesianOptimization."""
