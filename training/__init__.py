"""CIFAR-10/100 training of the keras_preact networks with the papers' recipe (see ``training.pipeline``).

Importing the package turns TensorFlow's oneDNN CPU kernels on unless the environment says otherwise
(``TF_ENABLE_ONEDNN_OPTS=0``): TensorFlow enables them by default only on some Intel CPUs, and on the
2-core AMD EPYC of bench/results they train ResNet-20 1.7x faster than the default Eigen kernels. The
variable is read when TensorFlow loads, so it only takes effect when this package is imported first,
as ``python -m training.cifar`` and ``python -m training.tune`` do.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
