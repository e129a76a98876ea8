"""Export a trained .keras classifier to TF Serving (SavedModel), TFLite, ONNX and OpenVINO,
verified.

    python -m export --model runs/demo/train/best.keras --output runs/demo/export --labels cifar10

or from Python::

    from export import export_model
    result = export_model("runs/demo/train/best.keras", "runs/demo/export", labels="cifar10")
    print(result.report.passed, result.savedmodel)

Stages, one module each: ``model`` (load, float32, preprocessing) -> ``savedmodel`` (signatures,
warm-up) and ``repository`` (TF Serving layout, models.config) -> ``tflite`` and ``onnx_export``
-> ``openvino_export`` (an optional extra) -> ``verify``; ``pipeline`` runs them, ``client``
talks to TF Serving, ``local_server`` stands in for it in tests.
"""

from __future__ import annotations

__all__ = ["ExportResult", "export_model"]


def __getattr__(name: str):
    # Lazy, so `python -m export.client` does not load the whole export stack.
    if name in __all__:
        from export import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
