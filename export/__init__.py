"""Export a trained .keras classifier to TF Serving (SavedModel), TFLite and ONNX, verified.

    python -m export --model runs/demo/train/best.keras --output runs/demo/export --labels cifar10

or from Python::

    from export import export_model
    result = export_model("runs/demo/train/best.keras", "runs/demo/export", labels="cifar10")
    print(result.report.passed, result.savedmodel)

Stages, one module each: ``model`` (load, float32, preprocessing) -> ``savedmodel`` (signatures,
warm-up) and ``repository`` (TF Serving layout, models.config) -> ``tflite`` and ``onnx_export``
-> ``verify``; ``pipeline`` runs them, ``client`` talks to TF Serving, ``local_server`` stands in
for it in tests.
"""

from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["ExportResult", "export_model"]


def _load_cli_module_alone() -> None:
    """Import ``keras_preact.cli`` without the rest of ``keras_preact``.

    The ``keras_preact`` package imports Keras, and with it TensorFlow, which writes its start-up
    log lines as it loads. ``keras_preact.cli`` needs only the standard library: loaded on its
    own, it lets the export commands answer ``--help`` and switch on the filter of those lines
    (``keras_preact.cli.quiet_native_logs``) before anything imports TensorFlow. Once the package
    is imported, ``from keras_preact.cli import ...`` finds this same module.
    """
    if "keras_preact" in sys.modules or "keras_preact.cli" in sys.modules:
        return
    package = importlib.util.find_spec("keras_preact")
    if package is None or not package.submodule_search_locations:
        return  # the first real import says what is wrong
    path = os.path.join(next(iter(package.submodule_search_locations)), "cli.py")
    spec = importlib.util.spec_from_file_location("keras_preact.cli", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise


_load_cli_module_alone()


def __getattr__(name: str):
    # Lazy, so `python -m export.client` does not load the whole export stack.
    if name in __all__:
        from export import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
