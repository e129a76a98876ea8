"""``python -m keras_preact.convert``: a checkpoint of another library -> a keras-preact ``.keras`` file.

    python -m keras_preact.convert resnet50-0676ba61.pth --output resnet50.keras
    python -m keras_preact.convert imagenet --model resnet50v1 --output resnet50.keras

The checkpoint is a file, or the name of published weights (``keras_preact.list_weights()``:
``imagenet``, ``cifar10``, ``cifar100`` with ``--model``, or a qualified name such as
``torchvision:IMAGENET1K_V2``), fetched, verified and cached first.

Prints the detected source and architecture, how many tensors were mapped and, where the source
framework is installed, the parity measured on the embedded sample; then writes the ``.keras``
file atomically (nothing is left behind on error, an existing file is kept unless --overwrite).
Exit 0 on success, 1 when the parity check fails (nothing written), 2 on bad input (a checkpoint
that cannot be read or converted, an --output that cannot be written: one line, before the
conversion).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import keras_preact.weights as weights_lib
from keras_preact.catalogue import resolve_network
from keras_preact.command_line import ArgumentParser, UserError, cli_main
from keras_preact.convert.sources import SourceUnavailable
from keras_preact.native_logs import add_native_logs_option, show_native_logs

EXIT_PARITY_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (documented in ``--help``)."""
    p = ArgumentParser(
        prog="python -m keras_preact.convert",
        description="Convert a torchvision, timm, keras.applications or PyTorch CIFAR ResNet "
        "checkpoint into a keras-preact .keras model, exactly, and measure the parity.",
    )
    p.add_argument(
        "checkpoint",
        help=".pth/.pt/.th, .safetensors or keras.applications .h5; or published weights by name "
        "(imagenet, cifar10, cifar100 with --model; or e.g. torchvision:IMAGENET1K_V2), fetched "
        "first (python -m keras_preact.weights lists them)",
    )
    p.add_argument("--output", required=True, help="the .keras file to write")
    p.add_argument(
        "--model",
        help="the keras-preact model the checkpoint must hold, e.g. resnet50v1 (default: the "
        "one it holds)",
    )
    p.add_argument(
        "--classes",
        type=int,
        help="number of classes (default: the checkpoint's); another number gets a new, "
        "untrained classifier",
    )
    p.add_argument(
        "--input-size", type=int, help="input height and width (default: 224 ImageNet, 32 CIFAR)"
    )
    p.add_argument(
        "--preprocessing",
        default="source",
        help="input normalisation inside the model: source (what the source's weights expect, "
        "where the checkpoint tells it; default), none, or cifar10, cifar100, imagenet, "
        "imagenet_inception, imagenet_caffe",
    )
    p.add_argument(
        "--option-a",
        default="split",
        help="PyTorch CIFAR v1 option A shortcuts: split (zero channels before and after the "
        "input's, akamaster; default) or after",
    )
    p.add_argument(
        "--parity-images",
        type=int,
        default=8,
        help="sample images the parity is measured on, where the source framework is "
        "installed (default 8; 0: not measured)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_native_logs_option(p)
    return p


def _named_entry(name: str, model: str | None):
    """The table's entry for published weights named on the command line (the first of the
    model's for a dataset name), None for a file; a ValueError when none fits."""
    if not weights_lib.is_named(name):
        return None
    if model is None:
        raise ValueError(f"{name!r} names published weights: say for which model with --model")
    key = resolve_network(model).key
    found = [e for e in weights_lib.ENTRIES if e.model == key and name in (e.dataset, e.qualified)]
    if not found:
        exist = ", ".join(
            f"{e.qualified} ({e.dataset})" for e in weights_lib.ENTRIES if e.model == key
        )
        raise ValueError(
            f"no published weights {name!r} for {key}; "
            + (f"it has {exist}" if exist else f"named weights exist for {_models()}")
            + (f" (or {', '.join(weights_lib.DATASETS)})" if exist else "")
        )
    return found[0]


def _models() -> str:
    return ", ".join(dict.fromkeys(e.model for e in weights_lib.ENTRIES))


def _check_output(output: str, overwrite: bool, checkpoint: str) -> Path:
    """``--output`` as a path, once it is sure that it can be written (nothing is left behind)."""
    path = Path(output)
    if path.suffix != ".keras":
        raise UserError(f"--output {output!r} must end in .keras")
    if path.is_dir():
        raise UserError(f"--output {output!r} is a directory")
    if path.exists() and os.path.exists(checkpoint) and os.path.samefile(path, checkpoint):
        raise UserError(f"--output {output!r} is the checkpoint itself; write to another file")
    if path.exists() and not overwrite:
        raise UserError(f"--output {output!r} exists; pass --overwrite to replace it")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"cannot write --output {output!r}: {str(existing)!r} is a file, not a folder"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".keras-preact-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write --output {output!r}: {e.strerror or e}") from None
    return path


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Parse, convert, measure parity, write."""
    args = build_parser().parse_args(argv)
    if args.native_logs:
        show_native_logs()
    output = _check_output(args.output, args.overwrite, args.checkpoint)
    if args.classes is not None and args.classes < 1:
        raise UserError(f"--classes must be a positive integer, got {args.classes}")
    if args.input_size is not None and args.input_size < 1:
        raise UserError(f"--input-size must be a positive integer, got {args.input_size}")
    if args.parity_images < 0:
        raise UserError(f"--parity-images must be 0 or more, got {args.parity_images}")
    # Keras-backed modules are imported after parsing: --help answers at once, and TensorFlow's
    # start-up log passes through the filter cli_main has set up.
    from keras_preact.preprocessing import DATASET_STATS

    choices = ("source", "none", *DATASET_STATS)
    if args.preprocessing not in choices:
        raise UserError(
            f"unknown --preprocessing {args.preprocessing!r}; expected one of {', '.join(choices)}"
        )

    from keras_preact.convert.conversion import convert_checkpoint
    from keras_preact.convert.parity import measure_parity

    checkpoint, preprocessing = args.checkpoint, args.preprocessing
    try:
        entry = _named_entry(args.checkpoint, args.model)
        if entry is not None:
            path, _ = weights_lib.fetch.fetch(entry)
            print(
                f"weights: {entry.qualified} ({entry.published} as its source publishes it), {path}"
            )
            checkpoint = str(path)
            if preprocessing == "source":  # the checkpoint cannot tell; the table does
                preprocessing = entry.preprocessing
        conversion = convert_checkpoint(
            checkpoint,
            model=args.model,
            classes=args.classes,
            input_shape=None if args.input_size is None else (args.input_size,) * 2 + (3,),
            preprocessing=None if preprocessing == "none" else preprocessing,
            option_a=args.option_a,
        )
    except ValueError as e:  # the checkpoint or the options: the user's input
        raise UserError(str(e)) from None
    source, loaded = conversion.source, conversion.loaded
    print(f"source: {source.source} ({conversion.checkpoint.description}, {checkpoint})")
    print(f"architecture: {source.summary()}")
    h, w = conversion.model.input_shape[1:3]
    print(
        f"model: {conversion.model.name}, input {h}×{w}, preprocessing "
        f"{conversion.preprocessing or 'none (inputs must come normalised)'}"
    )
    extra = [f"{loaded.ignored} batch-norm step counters ignored"] if loaded.ignored else []
    if loaded.classifier == "new":
        extra.append(f"classifier ({loaded.dropped} tensors) replaced by a new one")
    print(
        f"mapped: {loaded.tensors} tensors into {loaded.layers} layers"
        + (f" ({'; '.join(extra)})" if extra else "")
    )
    for note in source.notes:
        print(f"note: {note}")
    if conversion.preprocessing is None:
        print(
            "note: the model takes inputs normalised as the source's were; --preprocessing puts "
            "that normalisation inside the model (python -m export needs it there or as its "
            "own --preprocessing)"
        )
    if args.parity_images:
        try:
            parity = measure_parity(conversion, args.parity_images)
        except SourceUnavailable as e:
            print(f"parity: not measured ({e})")
        except ValueError as e:  # the source itself is broken
            raise UserError(str(e)) from None
        else:
            verdict = "ok" if parity.passed else f"FAILED (tolerance {parity.tolerance:.1e})"
            print(f"parity: {parity} — {verdict}", flush=True)
            if not parity.passed:
                print("error: the converted network does not compute what the source does; "
                      "nothing written", file=sys.stderr)  # fmt: skip
                return EXIT_PARITY_FAILED
    try:
        _save_atomically(conversion.model, output)
    except OSError as e:  # the disk filled up, or the folder changed since it was checked
        raise UserError(f"cannot write --output {args.output!r}: {e.strerror or e}") from None
    print(f"wrote {output}")
    return 0


def _save_atomically(model, output: Path) -> None:
    """Save to a temporary file beside ``output``, then rename it into place."""
    from keras_preact.saving import deep_graph_recursion  # Keras: after parsing, as in main

    created = [p for p in (output.parent, *output.parent.parents) if not p.exists()]
    tmp = output.parent / f".{output.stem}.{uuid.uuid4().hex[:12]}.keras"
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with deep_graph_recursion():
            model.save(tmp)
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for folder in created:  # innermost first; only the folders made here, if left empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


if __name__ == "__main__":
    sys.exit(main())
