"""OpenVINO IR files, their int8 form (NNCF), and an OpenVINO runner for them.

OpenVINO is optional (``pip install "keras-preact[openvino]"``, which brings NNCF too): nothing
here is imported by the rest of the export unless the plan asks for an OpenVINO file, and
:func:`availability` tells the plan what is installed without loading TensorFlow.

The IR is converted with OpenVINO's own converter (``openvino.convert_model``) from the export's
ONNX file (``export.onnx_export``: the serving SavedModel's ``probabilities`` signature, with its
graph simplified), and saved with float32 weights. It takes ``images`` float32 ``(N, H, W, 3)``
raw pixels and returns ``probabilities``, like the ONNX file.

One IR serves two precisions: OpenVINO chooses the precision of a compiled model at load time
(``INFERENCE_PRECISION_HINT``). On a CPU with bfloat16 instructions (AVX-512 BF16, AMX) its
default is bfloat16; :class:`OpenVINORunner` compiles either precision on request and reports the
one OpenVINO says it runs in. The int8 IR is NNCF's post-training quantisation of the same IR,
calibrated on real images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import logging
from pathlib import Path

import numpy as np

INSTALL_HINT = 'pip install "keras-preact[openvino]"'
# OpenVINO's names for the precisions a compiled model can be asked to run in.
HINTS = {"float32": "f32", "bfloat16": "bf16"}


@dataclasses.dataclass(frozen=True)
class Availability:
    """What of the OpenVINO stack is installed here, and what the CPU offers it."""

    openvino: bool
    nncf: bool
    bfloat16: bool  # OpenVINO's CPU plugin can run bfloat16 on this CPU


def availability() -> Availability:
    """Ask without importing TensorFlow: OpenVINO and NNCF installed, bfloat16 on this CPU."""
    found = importlib.util.find_spec("openvino") is not None
    if not found:
        return Availability(False, False, False)
    import openvino as ov  # only now: importing it costs half a second

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return Availability(True, importlib.util.find_spec("nncf") is not None, "BF16" in capabilities)


def export_openvino(onnx_path: str | Path, xml_path: str | Path) -> Path:
    """Convert the ONNX file to an OpenVINO IR (``xml_path`` and the ``.bin`` beside it)."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return Path(xml_path)


def quantize_openvino(
    model_path: str | Path, calibration: np.ndarray, out_path: str | Path
) -> Path:
    """NNCF's post-training int8 quantisation of an IR (or an ONNX file, which OpenVINO reads
    too), calibrated on uint8 ``(N, H, W, 3)`` real images (one at a time, every one of them),
    saved as an IR."""
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(model_path))
    images = [image[None].astype(np.float32) for image in np.asarray(calibration)]
    # NNCF draws progress bars (rich) on the terminal; the export prints its own lines.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantized = nncf.quantize(model, nncf.Dataset(images), subset_size=len(images))
    ov.save_model(quantized, str(out_path), compress_to_fp16=False)
    return Path(out_path)


class OpenVINORunner:
    """Probabilities from an OpenVINO IR (or ONNX) file on the CPU.

    Args:
        path: the ``.xml`` IR (or an ``.onnx`` file, which OpenVINO reads too).
        precision: ``float32``, ``bfloat16`` or ``None`` (OpenVINO's default for this CPU).
        num_threads: inference threads (default: OpenVINO's, every core).

    One compiled model per batch size (the input reshaped to it), as static shapes run fastest.
    ``precision_run`` is the precision OpenVINO reports the compiled model runs in (for an
    int8 IR: ``int8, other ops <precision>``).
    """

    def __init__(
        self, path: str | Path, precision: str | None = None, num_threads: int | None = None
    ) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.model = self.core.read_model(str(path))
        if len(self.model.inputs) != 1:
            raise ValueError(f"{path} has {len(self.model.inputs)} inputs; expected one")
        self.config: dict[str, str] = {}
        if precision is not None:
            self.config["INFERENCE_PRECISION_HINT"] = HINTS[precision]
        if num_threads:
            self.config["INFERENCE_NUM_THREADS"] = str(num_threads)
        self._requests: dict[int, object] = {}
        self.precision_run = self._request(1)[1]

    def _request(self, batch: int):
        if batch not in self._requests:
            model = self.model.clone()
            shape = list(model.inputs[0].get_partial_shape())
            model.reshape([batch, *shape[1:]])
            compiled = self.core.compile_model(model, "CPU", self.config)
            ran = precision_name(str(compiled.get_property("INFERENCE_PRECISION_HINT")))
            if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()):
                ran = f"int8, other ops {ran}"  # NNCF's quantised IR
            self._requests[batch] = (compiled.create_infer_request(), ran)
        return self._requests[batch]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 ``(N, H, W, 3)`` images."""
        request, _ = self._request(len(images))
        request.infer({0: np.asarray(images, np.float32)})
        return np.array(request.get_output_tensor(0).data)


def precision_name(ov_type: str) -> str:
    """``float32``/``bfloat16``/``float16`` for OpenVINO's element type as it prints (e.g.
    ``<Type: 'bfloat16'>`` or ``f32``)."""
    text = ov_type.lower()
    for name, short in (("bfloat16", "bf16"), ("float16", "f16"), ("float32", "f32")):
        if name in text or short in text:
            return name
    return text
