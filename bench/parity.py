"""Same network on every side: parameter counts and weight shapes compared before any timing."""

from __future__ import annotations

IMAGE_CLASSES = 10
"""Classes of the ImageNet networks as the benchmark trains them: the JPEG folder's (CIFAR-10's)."""


def check_parity(model: str) -> dict[str, int]:
    """Trainable parameters of every implementation of ``model``: keras-preact, the plain Keras
    model and the PyTorch network of a CIFAR ResNet; keras-preact and torchvision's network of an
    ImageNet one (with the folder's classes, as trained).

    Raises ValueError when the counts, the sorted weight shapes or the convolutions' strides differ
    (a different network would make every ratio meaningless).
    """
    import keras_preact
    from bench import plain_keras, torch_resnet
    from bench.architectures import CIFAR10_MEAN, CIFAR10_STD, get_architecture

    arch = get_architecture(model)
    if arch.family == "imagenet":
        from bench import torch_images

        ours = getattr(keras_preact, arch.name)(
            classes=IMAGE_CLASSES, preprocessing="imagenet", **dict(arch.options)
        )
        nets = {
            "keras-preact": ours,
            "pytorch": torch_images.build_torchvision_resnet(arch.name, IMAGE_CLASSES),
        }
    else:
        nets = {
            "keras-preact": keras_preact.ResNet(
                arch.depth, version=f"v{arch.version}", unit=arch.unit, preprocessing="cifar10"
            ),
            "plain-keras": plain_keras.build_plain_keras(model, CIFAR10_MEAN, CIFAR10_STD),
            "pytorch": torch_resnet.build_torch_resnet(model, CIFAR10_MEAN, CIFAR10_STD),
        }
    counts, structure = {}, {}
    for impl, net in nets.items():
        side = torch_resnet if impl == "pytorch" else plain_keras
        counts[impl] = side.count_params(net) if impl == "pytorch" else side.count_trainable(net)
        structure[impl] = (side.weight_shapes(net), side.conv_strides(net))
    if len(set(counts.values())) != 1:
        raise ValueError(f"{model}: the implementations differ: trainable parameters {counts}")
    for impl, (shapes, strides) in structure.items():
        if shapes != structure["pytorch"][0]:
            raise ValueError(f"{model}: {impl}'s weight shapes differ from PyTorch's")
        if strides != structure["pytorch"][1]:
            raise ValueError(f"{model}: {impl}'s convolutions stride differently from PyTorch's")
    return counts
