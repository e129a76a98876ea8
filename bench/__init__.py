"""Benchmarks: keras-preact against a plain Keras model and a plain PyTorch implementation.

`python -m bench` measures training speed, inference speed of every exported format and accuracy on
real images, splits keras-preact's training step into its parts (`bench.step_profile`), writes one
JSON line per measurement under ``bench/results/`` and renders the README's table of ratios from
those files (``python -m bench report``).
"""
