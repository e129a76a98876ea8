"""Training, testing and tuning of the keras_preact networks with the papers' recipes.

The commands (each a ``training.command_line.Command`` that parses its options, shared in
``training.options``, and calls the stages below):

* ``python -m training.cifar``: train on CIFAR-10/100 (``training.run.pipeline``);
* ``python -m training.images``: train or fine-tune on a folder of images or on ImageNet;
* ``python -m training.evaluate``: test a network with the papers' protocols;
* ``python -m training.reproduce``: one of the papers' CIFAR experiments, with its table and figure;
* ``python -m training.tune``: a keras-tuner search over the recipe.

The stages, each a subpackage that imports only those listed after it:

* ``training.experiments``: the papers' experiments as data, their runs, and their tables;
* ``training.evaluation``: the testing protocols (centre crop, 10-crop, multi-scale);
* ``training.run``: one run: strategy, model, compile, fit, callbacks, run folder, report;
* ``training.data``: the data a run trains on (``cifar``: arrays in memory; ``images``: files
  streamed from disk), under one contract (``training.data.batches``);
* ``training.recipes`` and ``training.choices``: the recipes and every named choice.

Importing the package turns TensorFlow's oneDNN CPU kernels on unless the environment says otherwise
(``TF_ENABLE_ONEDNN_OPTS=0``): TensorFlow enables them by default only on some Intel CPUs, and on a
2-core AMD EPYC they train ResNet-20 1.7x faster than the default Eigen kernels. The variable is read
when TensorFlow loads, so it only takes effect when this package is imported first, as the commands do.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
