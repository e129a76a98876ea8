"""Same network on every side: parameter counts and weight shapes compared before any timing."""

from __future__ import annotations


def check_parity(model: str) -> dict[str, int]:
    """Trainable parameters of keras-preact, the plain Keras model and the PyTorch network.

    Raises ValueError when the counts or the sorted weight shapes differ (a different network would
    make every ratio meaningless).
    """
    import keras_preact
    from bench import plain_keras, torch_resnet
    from bench.architectures import CIFAR10_MEAN, CIFAR10_STD, get_architecture

    arch = get_architecture(model)
    ours = keras_preact.ResNet(
        arch.depth, version=f"v{arch.version}", unit=arch.unit, preprocessing="cifar10"
    )
    plain = plain_keras.build_plain_keras(model, CIFAR10_MEAN, CIFAR10_STD)
    torch_net = torch_resnet.build_torch_resnet(model, CIFAR10_MEAN, CIFAR10_STD)
    counts = {
        "keras-preact": plain_keras.count_trainable(ours),
        "plain-keras": plain_keras.count_trainable(plain),
        "pytorch": torch_resnet.count_params(torch_net),
    }
    shapes = {
        "keras-preact": plain_keras.weight_shapes(ours),
        "plain-keras": plain_keras.weight_shapes(plain),
        "pytorch": torch_resnet.weight_shapes(torch_net),
    }
    if len(set(counts.values())) != 1 or any(v != shapes["pytorch"] for v in shapes.values()):
        raise ValueError(f"{model}: the implementations differ: trainable parameters {counts}")
    return counts
