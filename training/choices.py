"""Every named choice of the training commands, in one place: the parsers and ``--help``
(``training.options``), the checks of the stages that own each choice and the docs read these.
Plain Python: ``--help`` and usage errors answer before Keras or TensorFlow loads."""

from __future__ import annotations

DATASETS = ("cifar10", "cifar100", "cifar10-sample")
"""CIFAR datasets (``training.data.cifar.sources.load_arrays``); ``cifar10-sample``: the embedded one."""

RECIPES = {
    "paper": "He et al.: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at "
    "32k and 48k iterations, stop at 64k (164 epochs on CIFAR); lr 0.01 until the training error "
    "is below 80% for ResNet-110/1001",
    "fast": "a short GPU schedule: batch 256, Nesterov, cosine after a 2-epoch warm-up, label "
    "smoothing 0.1, weight decay 5e-4, 75 epochs",
    "demo": "the paper's step schedule in 30 epochs at batch 64 (the embedded sample on a CPU)",
}
"""CIFAR recipes (``training.recipes.RECIPES``) and what each trains."""

IMAGE_RECIPES = {
    "paper": "He et al. 2015 on ImageNet: SGD momentum 0.9, weight decay 1e-4, batch 256, lr 0.1 "
    "at batch 256 divided by 10 at epochs 30, 60 and 90, stop at 120",
    "finetune": "from --weights with a new classifier: SGD Nesterov momentum 0.9, weight decay "
    "1e-4, batch 32, lr 0.01 at batch 32, cosine over 10 epochs, the backbone at 0.1x the rate",
}
"""Recipes of a run on images (``training.recipes.IMAGE_RECIPES``) and what each trains."""

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
