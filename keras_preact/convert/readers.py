"""Reading checkpoints safely: named arrays out, no code of the file ever run.

Three file formats, recognised by their content (the extension is not trusted):

* PyTorch (``torch.save``: ``.pth``, ``.pt``, ``.th``, ``.pth.tar``): read with
  ``torch.load(weights_only=True)``, which unpickles tensors and plain containers only and refuses
  anything else. Only when torch is installed; no other unpickler is ever used.
* safetensors (``.safetensors``): read with the ``safetensors`` package, without torch.
* Keras HDF5 weights (``.h5``): the legacy layout Keras caches keras.applications weights in
  (``layer_names`` and per-layer ``weight_names`` attributes), read with ``h5py``; and
  keras.applications ResNets saved by Keras 3's ``save_weights`` (``.weights.h5``), loaded into
  keras.applications' own network (their arrays have no layer names).

A checkpoint that wraps its state dict (``{"state_dict": ...}``, ``{"model": ...}``, or a single
mapping of tensors under any other key, a few levels deep) is unwrapped, and the prefixes ``module.`` (``DataParallel``) and ``_orig_mod.`` (``torch.compile``) are removed.

Every tensor is checked as it is read, before anything is built from it: a weight must be
floating point (half, bfloat16 and double are converted to float32) and finite, and a batch-norm
variance must not be negative; only batch-norm step counters (``num_batches_tracked``) may be
integers. A checkpoint that breaks this is refused with a ``ValueError`` naming the tensor.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import warnings
import zipfile

import ml_dtypes  # noqa: F401  (gives NumPy bfloat16 for safetensors files; installed with Keras)
import numpy as np

FORMATS = {
    "pytorch": "PyTorch state dict (.pth, .pt, .th)",
    "safetensors": "safetensors (.safetensors)",
    "keras-h5": "Keras HDF5 weights (.h5, as keras.applications caches them)",
}
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# ``torch.save``'s legacy (non-zip) files start with a pickled magic number: protocol 2.
_PICKLE_PROTOCOL_2 = b"\x80\x02"
# Keys under which training scripts store the model's state dict next to epochs and metrics.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
_PREFIXES = ("module.", "_orig_mod.")
# PyTorch's batch-norm step counters: integer tensors that are no part of the network's function.
COUNTERS = ("num_batches_tracked",)
# Batch-norm variances, by their last name component (PyTorch, Keras).
_VARIANCES = ("running_var", "moving_variance")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The arrays of a checkpoint, by name, in the source framework's own layout.

    Attributes:
        path: the file.
        format: one of ``FORMATS``.
        tensors: name -> array. Weights are float32 (half and bfloat16 upcast exactly) and
            finite; batch-norm step counters (``COUNTERS``) keep their integer type.
    """

    path: str
    format: str
    tensors: dict[str, np.ndarray]

    @property
    def description(self) -> str:
        """The format in words."""
        return FORMATS[self.format]


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint's tensors (see the module docstring for the formats).

    Raises:
        ValueError: the file is missing, unreadable, truncated or corrupt, in no format understood,
            holds Python objects other than tensors (PyTorch), needs torch and torch is not
            installed, or holds values that cannot be weights (see the module docstring).
    """
    path = os.fspath(path)
    fmt, tensors = _read(path)
    return Checkpoint(path, fmt, _weights(path, tensors))


def _read(path: str) -> tuple[str, dict[str, np.ndarray]]:
    """The format and the raw arrays of the file at ``path``."""
    if os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} is a directory, not a checkpoint file")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} is not a regular file (a device, pipe or socket)")
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint not found: {path!r}")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise ValueError(f"cannot read checkpoint {path!r}: {e.strerror or e}") from None
    if head.startswith(_HDF5_SIGNATURE):
        return "keras-h5", _read_h5(path)
    if head.startswith(b"PK") and _is_keras_archive(path):
        raise ValueError(
            f"{path!r} is a Keras model file (.keras), not a checkpoint to convert: load it with "
            "keras_preact.load_model, or pass it as weights= to the model it was saved from"
        )
    if head.startswith(b"PK") or head.startswith(_PICKLE_PROTOCOL_2):
        return "pytorch", _read_torch(path)
    if len(head) > 8 and head[8:9] == b"{":
        return "safetensors", _read_safetensors(path)
    raise ValueError(
        f"{path!r} is neither a Keras .weights.h5/.keras file nor a checkpoint in a format "
        f"understood ({'; '.join(FORMATS.values())})" + (": the file is empty" if not head else "")
    )


def _weights(path: str, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors with every weight as float32, or a ValueError naming the first that cannot be
    a weight: not floating point, NaN or infinite (also once in float32), a negative variance."""
    checked = {}
    for name, array in tensors.items():
        leaf = re.split(r"[./]", name)[-1]
        if leaf in COUNTERS:
            checked[name] = array
            continue
        what = f"{path!r}: tensor {name!r} {tuple(array.shape)}"
        if not _is_float(array.dtype):
            raise ValueError(
                f"{what} is {array.dtype}; weights are floating point (only batch-norm step "
                f"counters, {', '.join(COUNTERS)}, may be integers): not a checkpoint of weights"
            )
        with np.errstate(over="ignore"):  # a double beyond float32 is refused just below
            value = np.asarray(array, dtype=np.float32)
        bad = int(np.count_nonzero(~np.isfinite(value)))
        if bad:
            beyond = bad > np.count_nonzero(~np.isfinite(array.astype(np.float64)))
            raise ValueError(
                f"{what} has {bad} NaN or infinite value{'s' if bad > 1 else ''} (of "
                f"{value.size}{', beyond float32' if beyond else ''}): the checkpoint is broken"
            )
        if leaf in _VARIANCES and (value < 0).any():
            raise ValueError(
                f"{what} is a batch-norm variance with {int((value < 0).sum())} negative "
                "value(s): the checkpoint is broken"
            )
        checked[name] = value
    return checked


def _is_float(dtype: np.dtype) -> bool:
    """NumPy's floating-point types, and ml_dtypes' (bfloat16, float8_*)."""
    return dtype.kind == "f" or (dtype.kind == "V" and dtype.name.startswith(("bfloat", "float")))


def _is_keras_archive(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return {"config.json", "model.weights.h5"} <= set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _read_torch(path: str) -> dict[str, np.ndarray]:
    try:
        import torch  # optional: only for PyTorch files
    except ImportError:
        raise ValueError(
            f"{path!r} is a PyTorch checkpoint; reading it needs torch "
            "(pip install 'keras-preact[convert]'), or save its state dict as .safetensors"
        ) from None
    try:
        with warnings.catch_warnings():  # torch's notes on TorchScript and legacy storages
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = _torch_reason(e)
        if "weights only" in str(e).lower() or "weights_only" in str(e).lower():
            raise ValueError(
                f"{path!r} holds Python objects besides tensors{_refers_to(str(e))}, and "
                "keras-preact loads only weights-only checkpoints (torch.load(weights_only=True));"
                " it never runs a pickle's code. Save the state dict alone "
                "(torch.save(model.state_dict(), ...)) or as .safetensors"
            ) from None
        raise ValueError(f"cannot read PyTorch checkpoint {path!r}: corrupt ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        if "TorchScript" in str(e):
            raise ValueError(
                f"{path!r} is a TorchScript archive (torch.jit.save), which holds code; "
                "keras-preact reads state dicts only: save torch.save(model.state_dict(), ...) "
                "or a .safetensors file"
            ) from None
        first = _torch_reason(e)
        raise ValueError(
            f"cannot read PyTorch checkpoint {path!r}: truncated or corrupt ({first})"
        ) from None
    state = _state_dict(obj, path)
    tensors = {}
    for name, value in state.items():
        try:
            if value.is_floating_point():  # bfloat16 has no NumPy type: float32 here
                tensors[name] = value.detach().to(torch.float32).numpy()
            else:
                tensors[name] = value.detach().numpy()
        except (RuntimeError, TypeError) as e:  # quantized, sparse, meta tensors
            raise ValueError(
                f"{path!r}: tensor {name!r} ({value.dtype}, {value.layout}) is not a plain array "
                f"of weights: {str(e).splitlines()[0]}"
            ) from None
    return tensors


def _torch_reason(error: BaseException) -> str:
    """The first line of torch's message, without its advice to retry with weights_only=False."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return re.split(r"\s*(?:In PyTorch 2\.6|Re-running|This file can still be loaded)", first)[0]


def _refers_to(message: str) -> str:
    """``" (it refers to pathlib.Path.touch)"``: the object torch's weights-only unpickler
    refused, from its message (whose advice, to load it anyway, is not passed on)."""
    name = re.search(r"GLOBAL ([\w.]+)", message)
    return f" (it refers to {name.group(1)})" if name else ""


def _state_dict(obj, path: str) -> dict:
    """The ``name -> tensor`` mapping of a loaded PyTorch object, unwrapped and unprefixed.

    A mapping under one of ``_WRAPPER_KEYS`` is taken first; otherwise the object itself, or the
    one mapping of tensors under any other key, a few levels deep (``{"ema": {"model": ...}}``).
    Several mappings of tensors side by side are refused rather than one of them guessed.
    """
    import torch  # optional: only for PyTorch files

    def holds_tensors(value) -> bool:
        return isinstance(value, dict) and any(isinstance(v, torch.Tensor) for v in value.values())

    top = obj
    for _ in range(4):
        if not isinstance(obj, dict):
            break
        wrapped = next((obj[k] for k in _WRAPPER_KEYS if holds_tensors(obj.get(k))), None)
        if wrapped is not None:
            obj = wrapped
            break
        if holds_tensors(obj):
            break
        mappings = [k for k, v in obj.items() if isinstance(v, dict)]
        states = [k for k in mappings if holds_tensors(obj[k])]
        if len(states) > 1:
            raise ValueError(
                f"{path!r} holds several state dicts ({', '.join(map(repr, states[:4]))}); save "
                "the one to convert alone (torch.save(state_dict, ...))"
            )
        if len(states) != 1 and len(mappings) != 1:
            break
        obj = obj[(states or mappings)[0]]
    if not holds_tensors(obj):
        raise ValueError(
            f"{path!r} holds no state dict (a mapping of names to tensors, at its top level or "
            f"under a key such as {', '.join(map(repr, _WRAPPER_KEYS))}): it holds "
            f"{_contents(top)}"
        )
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return _strip_prefixes(state)


def _contents(obj) -> str:
    """``{'epoch': int, 'weights': a mapping of 3 entries}``: what a loaded object holds."""
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__}"
    items = [
        f"{k!r}: " + (f"a mapping of {len(v)} entries" if isinstance(v, dict) else type(v).__name__)
        for k, v in list(obj.items())[:6]
    ]
    return "{" + ", ".join(items) + (", ..." if len(obj) > 6 else "") + "}"


def _strip_prefixes(state: dict) -> dict:
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        from safetensors import SafetensorError, safe_open  # optional: .safetensors only
    except ImportError:
        raise ValueError(
            f"{path!r} is a safetensors file; reading it needs the safetensors package "
            "(pip install 'keras-preact[convert]')"
        ) from None
    tensors = {}
    try:
        with safe_open(path, framework="numpy") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensors[name] = f.get_tensor(name)
    except SafetensorError as e:
        raise ValueError(
            f"cannot read safetensors file {path!r}: truncated or corrupt ({e})"
        ) from None
    except TypeError as e:  # a dtype NumPy and ml_dtypes do not know
        raise ValueError(f"cannot read safetensors file {path!r}: {e}") from None
    return _strip_prefixes(tensors)


def _read_h5(path: str) -> dict[str, np.ndarray]:
    """Keras' legacy HDF5 weights: ``{layer}/{weight}`` -> array (``kernel``, ``gamma``, ...).

    The layout (Keras 2's ``save_weights`` to ``.h5``, and the files keras.applications downloads
    and caches): the root (or its ``model_weights`` group, in a whole-model file) lists its layers
    in the ``layer_names`` attribute; each layer's group lists ``weight_names`` such as
    ``conv1_conv/kernel:0``, the paths of its arrays inside the group.
    """
    import h5py  # only for HDF5 files

    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)
            depth = keras3_applications_depth(f)
            if depth is not None:
                has_top = "dense" in f["layers"]
                classes = int(f["layers"]["dense"]["vars"]["0"].shape[-1]) if has_top else None
            elif "layer_names" not in root.attrs:
                if "layers" in root and "vars" in root:
                    raise ValueError(
                        f"{path!r} is a Keras 3 .weights.h5 file of a network keras-preact does "
                        "not convert (its arrays are named by layer class and position only); "
                        "load it with model.load_weights into the model that saved it"
                    )
                raise ValueError(f"{path!r} is an HDF5 file but not Keras weights (no layer_names)")
            tensors = {}
            for layer in _strings(root.attrs.get("layer_names", []) if depth is None else []):
                group = root[layer]
                for weight in _strings(group.attrs.get("weight_names", [])):
                    role = weight.rsplit("/", 1)[-1].split(":", 1)[0]
                    tensors[f"{layer}/{role}"] = np.asarray(group[weight])
    except (OSError, KeyError) as e:
        raise ValueError(f"cannot read HDF5 file {path!r}: truncated or corrupt ({e})") from None
    if depth is not None:
        return _read_keras3_applications(path, depth, classes)
    return tensors


# Convolutions of keras.applications' ResNet50/101/152, all with a bias.
_KERAS_APPLICATIONS_CONVS = {53: 50, 104: 101, 155: 152}


def keras3_applications_depth(f) -> int | None:
    """The depth of a keras.applications ResNet saved with Keras 3's ``save_weights``
    (``layers/conv2d_N/vars/{0,1}``, ``layers/dense``) in the open HDF5 file ``f``, else None.

    Keras 3 names those arrays by layer class and position, not by layer name: such a file is
    read by building keras.applications' own network of that depth and loading it there.
    """
    import h5py  # only for HDF5 files

    layers = f.get("layers")
    if not isinstance(layers, h5py.Group) or "vars" not in f:
        return None
    convs = [layers[k] for k in layers if k == "conv2d" or k.startswith("conv2d_")]
    if not convs or any(len(c.get("vars", ())) != 2 for c in convs):  # a kernel and a bias each
        return None
    return _KERAS_APPLICATIONS_CONVS.get(len(convs))


def _read_keras3_applications(path: str, depth: int, classes: int | None) -> dict[str, np.ndarray]:
    import keras  # convert imports without Keras (its --help)

    build = getattr(keras.applications, f"ResNet{depth}")
    if classes is None:
        net = build(weights=None, include_top=False, input_shape=(None, None, 3))
    else:
        net = build(weights=None, classes=classes, classifier_activation=None)
    try:
        net.load_weights(path)
    except ValueError as e:
        raise ValueError(
            f"{path!r} looks like keras.applications ResNet{depth} weights saved by Keras 3, but "
            f"Keras cannot load them into that network: {str(e).splitlines()[0]}"
        ) from None
    return {
        f"{layer.name}/{w.path.rsplit('/', 1)[-1]}": np.asarray(keras.ops.convert_to_numpy(w))
        for layer in net.layers
        for w in layer.weights
    }


def _strings(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]
