"""Markdown tables of ratios from result files: what README.md shows between its bench markers.

Ratios are "how many times better keras-preact is": images/s divided by the peer's images/s,
the peer's latency divided by keras-preact's latency. A measurement repeated in several files (or
lines) counts once, the last one read. Values measured while other processes used the CPU are
marked with ``*``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path

from bench.infer_speed import PRECISION_CLASSES, PRECISIONS
from bench.results import Record, read_records
from bench.step_profile import WHOLE
from bench.turns import paired_ratio
from keras_preact.command_line import UserError

UNDER_LOAD = " (under load"
TRAIN_TARGETS = {"ResNet20V1": 1.5, "ResNet164V2": 1.3}
"""The training speed keras-preact aims for, in times PyTorch's images/s, per model."""
COMPILE_TARGETS = {"ResNet20V1": 1.0, "ResNet164V2": 1.0}
"""The same against PyTorch compiled by ``torch.compile`` (float32)."""
CLASS_TARGET = 1.0
"""Inference: keras-preact's fastest verified artifact of a precision class against the fastest
peer of the same class, at batch 1 (latency) and batch 32 (images/s)."""
FEED_TARGET = 1.0  # keras-preact's image feed against torchvision's, same workers
INT8_LATENCY_TARGET_MS = 0.5
"""The batch-1 latency TFLite int8 aims for (ResNet-20)."""
INT8_ACC_LOSS_POINTS = 1.0
"""The most accuracy (percentage points) TFLite int8 may lose against Keras."""
INFER_ORDER = (
    "keras-preact",
    "savedmodel",
    "tflite-float32",
    "tflite-float16",
    "tflite-dynamic",
    "tflite-int8",
    "onnx",
    "onnx-int8",
    "openvino-float32",
    "openvino-bfloat16",
    "openvino-int8",
    "pytorch",
    "pytorch-compile",
    "pytorch-onnx",
    "pytorch-onnx-int8",
    "pytorch-openvino-float32",
    "pytorch-openvino-bfloat16",
    "pytorch-openvino-int8",
)
OURS = tuple(i for i in INFER_ORDER if not i.startswith("pytorch"))


def load(paths: Iterable[Path]) -> list[Record]:
    """Records of all files, the last of each repeated measurement winning."""
    latest: dict[tuple, Record] = {}
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"result file not found: {path}")
        for r in read_records(Path(path)):
            key = (r.stage, r.impl, r.model, r.metric, r.batch, r.seed, r.variant, _device(r))
            # The profile stage's parts of one step; a model's defaults in each of its turn groups.
            key += (r.extra.get("part"), r.extra.get("turn_group"))
            latest.pop(key, None)
            latest[key] = r
    return list(latest.values())


def _device(r: Record) -> str:
    return r.device.split(UNDER_LOAD)[0]


def _loaded(r: Record) -> bool:
    return UNDER_LOAD in r.device


def _find(records: list[Record], **want) -> Record | None:
    found = [r for r in records if all(getattr(r, k) == v for k, v in want.items())]
    return found[-1] if found else None


def _fmt(r: Record | None, spec: str = ".1f") -> str:
    if r is None:
        return "–"
    return f"{r.value:{spec}}" + ("\\*" if _loaded(r) else "")


def _ratio(num: Record | None, den: Record | None) -> float | None:
    if num is None or den is None or den.value == 0:
        return None
    return num.value / den.value


def _speed_ratio(num: Record | None, den: Record | None) -> float | None:
    """images/s ratio of two training records: the median of per-round ratios when both were
    timed in the same turn group (see bench.turns), else the ratio of their medians."""
    group = num.extra.get("turn_group") if num is not None else None
    if group is not None and den is not None and den.extra.get("turn_group") == group:
        return paired_ratio(num.extra["windows_img_s"], den.extra["windows_img_s"])
    return _ratio(num, den)


def _took_turns(a: Record | None, b: Record | None) -> bool:
    """Whether ``a`` and ``b`` were measured taking turns in one process (bench.timing.time_rounds)."""
    return (
        a is not None
        and b is not None
        and b.impl in a.extra.get("interleaved_with", ())
        and a.impl in b.extra.get("interleaved_with", ())
    )


def _latency_ratio(peer: Record | None, ours: Record | None) -> float | None:
    """How many times faster ``ours`` answers at batch 1 than ``peer``: the median of per-round
    ratios when the two took turns in one process (bench.timing.time_rounds), else of medians."""
    if _took_turns(peer, ours):
        return paired_ratio(peer.extra["rounds_lat1_ms"], ours.extra["rounds_lat1_ms"])
    return _ratio(peer, ours)


def _paired_note(rows: list[Record], who: str = "every implementation of a model") -> str:
    if rows and all(r.extra.get("turn_group") for r in rows):
        return (
            f"; {who} in its own warm process, timed window by window "
            "in turn; ratios are medians of per-round ratios"
        )
    return ""


def _x(ratio: float | None, target: float | None = None) -> str:
    if ratio is None:
        return "–"
    text = f"{ratio:.2f}×"
    if target is not None:
        text += " ✅" if ratio >= target else f" ❌ (target ≥ {target}×)"
    return text


def _models(records: list[Record]) -> list[str]:
    return sorted(
        {r.model for r in records},
        key=lambda m: (m[-2:], int("".join(filter(str.isdigit, m[:-2])) or 0)),
    )


def _from_images(r: Record) -> bool:
    """A training record of an ImageNet network, trained from JPEG files."""
    return "image_size" in r.extra


def train_table(records: list[Record]) -> list[str]:
    """Training images/s and the ratios keras-preact / PyTorch and keras-preact / plain Keras."""
    rows = [
        r
        for r in records
        if r.stage == "train" and r.metric == "train_img_s" and not r.variant
        if not _from_images(r)
    ]
    if not rows:
        return []
    lines = [
        f"Training, images/s (batch {rows[0].batch}, steady state, median of timed windows"
        f"{_paired_note(rows)}; torch.compile: TorchInductor, default mode, its compiling "
        "first step timed apart):",
        "",
        "| model | keras-preact | plain Keras | PyTorch | torch.compile | vs PyTorch "
        "| vs torch.compile | vs plain Keras |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    compiles = []
    for model in _models(rows):
        ours = _find(rows, model=model, impl="keras-preact")
        plain = _find(rows, model=model, impl="plain-keras")
        torch = _find(rows, model=model, impl="pytorch")
        compiled = _find(rows, model=model, impl="pytorch-compile")
        lines.append(
            f"| {model} | {_fmt(ours)} | {_fmt(plain)} | {_fmt(torch)} | {_fmt(compiled)} "
            f"| {_x(_speed_ratio(ours, torch), TRAIN_TARGETS.get(model))} "
            f"| {_x(_speed_ratio(ours, compiled), COMPILE_TARGETS.get(model))} "
            f"| {_x(_speed_ratio(ours, plain), 1.0)} |"
        )
        # The coldest compile of the model (a later turn group finds the graph in the cache).
        seconds = [
            r.extra["compile_s"]
            for r in rows
            if r.model == model and r.impl == "pytorch-compile" and "compile_s" in r.extra
        ]
        if seconds:
            compiles.append(f"{model} {max(seconds):.0f} s")
    if compiles:
        lines += ["", f"torch.compile's first (compiling) step: {', '.join(compiles)}."]
    return [*lines, ""]


def bfloat16_train_table(records: list[Record]) -> list[str]:
    """The bfloat16 variant of every implementation: keras-preact against PyTorch eager and
    compiled, all in bfloat16 (where the CPU has AVX-512 BF16 or AMX)."""
    rows = [
        r
        for r in records
        if r.stage == "train" and r.metric == "train_img_s" and r.variant == "bfloat16"
    ]
    if not rows:
        return []
    lines = [
        "Training in bfloat16 (mixed precision: bfloat16 compute, float32 variables), images/s:",
        "",
        "| model | keras-preact | PyTorch | torch.compile | vs PyTorch | vs torch.compile |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model in _models(rows):
        ours = _find(rows, model=model, impl="keras-preact")
        torch = _find(rows, model=model, impl="pytorch")
        compiled = _find(rows, model=model, impl="pytorch-compile")
        lines.append(
            f"| {model} | {_fmt(ours)} | {_fmt(torch)} | {_fmt(compiled)} "
            f"| {_x(_speed_ratio(ours, torch))} | {_x(_speed_ratio(ours, compiled), 1.0)} |"
        )
    return [*lines, ""]


def image_train_table(records: list[Record]) -> list[str]:
    """Training images/s of the ImageNet networks from JPEG files, keras-preact / PyTorch."""
    rows = [
        r
        for r in records
        if r.stage == "train" and r.metric == "train_img_s" and not r.variant and _from_images(r)
    ]
    if not rows:
        return []
    workers = {r.extra["loader_workers"] for r in rows if "loader_workers" in r.extra}
    workers_note = f" of {', '.join(map(str, sorted(workers)))} worker processes" if workers else ""
    size = rows[0].extra["image_size"]
    lines = [
        f"Training at {size}×{size} from JPEG files, images/s (each side decodes and augments the "
        "folder's JPEGs with the v1 paper's scale augmentation while it trains: keras-preact "
        "through its tf.data image pipeline, PyTorch through torchvision's ImageFolder and "
        f"DataLoader{workers_note}; steady state, median of timed windows{_paired_note(rows)}):",
        "",
        "| model | batch | keras-preact | PyTorch | vs PyTorch |",
        "|---|---:|---:|---:|---:|",
    ]
    for model in _models(rows):
        ours = _find(rows, model=model, impl="keras-preact")
        torch = _find(rows, model=model, impl="pytorch")
        batch = (ours or torch).batch
        lines.append(
            f"| {model} | {batch} | {_fmt(ours)} | {_fmt(torch)} | {_x(_speed_ratio(ours, torch))} |"
        )
    return [*lines, ""]


def feed_table(records: list[Record]) -> list[str]:
    """Images/s of decoding and augmenting JPEGs: keras-preact's tf.data feed / torchvision's."""
    rows = [r for r in records if r.stage == "feed" and r.metric == "feed_img_s"]
    if not rows:
        return []
    first = rows[0].extra
    folder = first["folder"]
    size = first["image_size"]
    low, high = first["scale_range"]
    lines = [
        f"Decoding and augmenting JPEG files on the CPU, images/s (the v1 paper's augmentation: "
        f"shorter side random in [{low}, {high}], random {size}×{size} crop, flip, PCA lighting; "
        f"{folder['train_images']:,} JPEGs of {folder['mean_width']:.0f}×"
        f"{folder['mean_height']:.0f} pixels and {folder['mean_kib']:.0f} KiB on average; "
        "keras-preact's tf.data feed on a private pool of as many threads as torchvision's "
        f"DataLoader has worker processes{_paired_note(rows, 'each side')}):",
        "",
        "| workers | batch | keras-preact (tf.data) | torchvision (ImageFolder + DataLoader) "
        "| vs torchvision |",
        "|---:|---:|---:|---:|---:|",
    ]
    for workers, batch in sorted({(r.extra["workers"], r.batch) for r in rows}):
        same = [r for r in rows if (r.extra["workers"], r.batch) == (workers, batch)]
        ours, theirs = _find(same, impl="keras-preact"), _find(same, impl="pytorch")
        lines.append(
            f"| {workers} | {batch} | {_fmt(ours)} | {_fmt(theirs)} "
            f"| {_x(_speed_ratio(ours, theirs), FEED_TARGET)} |"
        )
    return [*lines, ""]


def profile_table(records: list[Record]) -> list[str]:
    """Each profiling variant's training images/s against the same implementation's default."""
    rows = [r for r in records if r.stage == "train" and r.metric == "train_img_s"]
    variants = [r for r in rows if r.variant]
    if not variants:
        return []
    lines = [
        "Where the training time goes (each variant changes one thing; see bench/variants.py):",
        "",
        "| model | implementation | variant | images/s | default images/s | variant / default |",
        "|---|---|---|---:|---:|---:|",
    ]
    for model in _models(variants):
        for r in sorted(
            (v for v in variants if v.model == model), key=lambda v: (v.impl, v.variant)
        ):
            # Its own turn group's default when it had one (a model may have had several groups).
            group = r.extra.get("turn_group")
            bases = [b for b in rows if b.extra.get("turn_group") == group] if group else []
            base = _find(bases or rows, model=model, impl=r.impl, variant=None)
            ratio = _x(_speed_ratio(r, base))
            lines.append(
                f"| {model} | {r.impl} | {r.variant} | {_fmt(r)} | {_fmt(base)} | {ratio} |"
            )
    return [*lines, ""]


def step_table(records: list[Record]) -> list[str]:
    """The profile stage: keras-preact's step split into oneDNN's primitives and the rest, and
    the speed the convolutions alone would allow."""
    rows = [r for r in records if r.stage == "profile" and r.metric == "step_ms"]
    if not rows:
        return []
    lines = [
        "Where a keras-preact training step goes (oneDNN's own timing of every primitive, one "
        "inter-op thread; see bench/step_profile.py):",
        "",
        "| model | part | ms per step | share | calls per step | GFLOP/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    bounds = []
    for model in _models(rows):
        parts = [r for r in rows if r.model == model]
        whole = next((r for r in parts if r.extra["part"] == WHOLE), None)
        if whole is None:
            continue
        convs = [r for r in parts if r.extra.get("gflop_s")]
        for r in parts:
            calls = r.extra.get("calls_per_step")
            gflop_s = r.extra.get("gflop_s")
            lines.append(
                f"| {model} | {r.extra['part']} | {_fmt(r)} | {100 * r.value / whole.value:.0f} % "
                f"| {f'{calls:g}' if calls else ''} | {f'{gflop_s:.0f}' if gflop_s else ''} |"
            )
        if not convs:
            continue
        conv_ms = sum(r.value for r in convs)
        gflop = sum(r.value * r.extra["gflop_s"] for r in convs) / 1000
        most = whole.batch * 1000 / conv_ms
        torch = _find(
            records, stage="train", model=model, impl="pytorch", metric="train_img_s", variant=None
        )
        versus = f", {most / torch.value:.2f}× PyTorch's {torch.value:.0f}" if torch else ""
        bounds.append(
            f"- {model}: the convolutions take {conv_ms:.0f} of {whole.value:.0f} ms per step at "
            f"{gflop / conv_ms * 1000:.0f} GFLOP/s; with everything else free a step would train "
            f"at most {most:.0f} images/s{versus}."
        )
    return [*lines, "", *bounds, ""] if bounds else [*lines, ""]


def infer_table(records: list[Record]) -> list[str]:
    """Per format: batch-1 latency, batch-32 images/s, test accuracy; ONNX against PyTorch's ONNX."""
    rows = [r for r in records if r.stage == "infer" and not r.variant]
    if not rows:
        return []
    took_turns = any(r.extra.get("interleaved_with") for r in rows)
    lines = [
        "Inference on the CPU (median batch-1 latency; batch-32 images/s; accuracy on the test "
        "images when the model is the trained ResNet-20"
        + (
            "; the two ONNX files took turns in one onnxruntime process, and their ratio is the "
            "median of per-round ratios"
            if took_turns
            else ""
        )
        + "):",
        "",
        "| model | runtime | precision | batch-1 ms | batch-32 img/s | accuracy "
        "| batch-1 vs PyTorch ONNX |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for model in _models(rows):
        peer = _find(rows, model=model, impl="pytorch-onnx", metric="lat1_ms")
        for impl in INFER_ORDER:
            lat = _find(rows, model=model, impl=impl, metric="lat1_ms")
            if lat is None:
                continue
            b32 = _find(rows, model=model, impl=impl, metric="img_s_b32")
            acc = _find(rows, model=model, impl=impl, metric="acc")
            ratio = _latency_ratio(peer, lat)
            target = 1.0 if impl == "onnx" else None
            precision = lat.extra.get("precision", "–")
            lines.append(
                f"| {model} | {impl} | {precision} | {_fmt(lat, '.2f')} | {_fmt(b32, '.0f')} "
                f"| {_fmt(acc, '.3f')} | {_x(ratio, target)} |"
            )
    return [*lines, ""]


def _class_of(r: Record) -> str | None:
    klass = r.extra.get("precision_class")
    return klass or (PRECISIONS[r.impl][1] if r.impl in PRECISIONS else None)


def _throughput_ratio(ours: Record | None, peer: Record | None) -> float | None:
    """How many times more images/s ``ours`` makes at batch 32: paired when the two took turns."""
    if _took_turns(ours, peer):
        return paired_ratio(ours.extra["rounds_img_s_b32"], peer.extra["rounds_img_s_b32"])
    return _ratio(ours, peer)


def _named(r: Record | None) -> str:
    """``impl (precision) value unit`` of an inference record."""
    if r is None:
        return "–"
    value = f"{_fmt(r, '.2f')} ms" if r.metric == "lat1_ms" else f"{_fmt(r, '.0f')} img/s"
    return f"{r.impl} ({r.extra.get('precision', '?')}) {value}"


def _counts(r: Record) -> bool:
    """Whether keras-preact's artifact counts for the targets: verified by the export, or made
    from a random-weight network, whose probabilities are too flat for a low-precision file's
    top-1 answers to agree with Keras' (the peers' files are not verified either)."""
    return r.extra.get("weights") == "random" or r.extra.get("export_verified", True)


def precision_table(records: list[Record]) -> list[str]:
    """Per model and precision class: keras-preact's fastest verified artifact against the
    fastest peer of the same class, at batch 1 and 32 (the inference targets)."""
    rows = [r for r in records if r.stage == "infer" and not r.variant and _class_of(r)]
    if not any(r.impl.startswith("pytorch-") for r in rows):
        return []  # nothing but the eager peer: the table above says it all
    lines = [
        "Inference targets: keras-preact's fastest verified artifact of each precision class "
        f"against the fastest PyTorch peer of the same class (≥ {CLASS_TARGET}×; paired ratios "
        "where the two took turns in one process; with random weights every exported file "
        "counts, as top-1 agreement means nothing there):",
        "",
        "| model | class | batch | keras-preact (fastest) | peer (fastest) | ratio |",
        "|---|---|---:|---|---|---:|",
    ]
    for model in _models(rows):
        for klass in PRECISION_CLASSES:
            same = [r for r in rows if r.model == model and _class_of(r) == klass]
            ours_all = [r for r in same if r.impl in OURS and _counts(r)]
            peers = [r for r in same if r.impl.startswith("pytorch")]
            for metric, batch, best, ratio_of in (
                ("lat1_ms", 1, min, lambda o, p: _latency_ratio(p, o)),
                ("img_s_b32", 32, max, _throughput_ratio),
            ):
                ours = [r for r in ours_all if r.metric == metric]
                theirs = [r for r in peers if r.metric == metric]
                if not ours and not theirs:
                    continue
                fastest = best(ours, key=lambda r: r.value) if ours else None
                peer = best(theirs, key=lambda r: r.value) if theirs else None
                lines.append(
                    f"| {model} | {klass} | {batch} | {_named(fastest)} | {_named(peer)} "
                    f"| {_x(ratio_of(fastest, peer), CLASS_TARGET)} |"
                )
    return [*lines, ""]


def accuracy_table(records: list[Record]) -> list[str]:
    """Mean and standard deviation of the test accuracy over seeds, and the training time."""
    rows = [r for r in records if r.stage == "accuracy"]
    if not rows:
        return []
    lines = [
        "Accuracy on real CIFAR-10 test images (same recipe and epochs for both; mean ± sample "
        "standard deviation over seeds):",
        "",
        "| model | implementation | seeds | epochs | train images | test images | accuracy | train time (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model in _models(rows):
        for impl in ("keras-preact", "pytorch"):
            accs = [r for r in rows if r.model == model and r.impl == impl and r.metric == "acc"]
            times = [
                r.value
                for r in rows
                if r.model == model and r.impl == impl and r.metric == "train_time_s"
            ]
            if not accs:
                continue
            mean, spread = mean_and_spread([r.value for r in accs])
            first = accs[0]
            star = "\\*" if any(_loaded(r) for r in accs) else ""
            lines.append(
                f"| {model} | {impl} | {len(accs)} | {first.extra.get('epochs', '–')} "
                f"| {first.extra.get('train_images', '–')} | {first.n or '–'} "
                f"| {100 * mean:.1f} ± {100 * spread:.1f} % | {statistics.mean(times):.0f}{star} |"
            )
    return [*lines, ""]


def mean_and_spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def targets(records: list[Record]) -> list[str]:
    """The benchmark's targets that these records can decide, one line each: TFLite int8
    latency and accuracy loss (``INT8_*``), and keras-preact's trained accuracy at least
    PyTorch's."""
    lines = []
    for model in ("ResNet20V1",):
        int8 = _find(records, stage="infer", model=model, impl="tflite-int8", metric="lat1_ms")
        acc8 = _find(records, stage="infer", model=model, impl="tflite-int8", metric="acc")
        ref = _find(records, stage="infer", model=model, impl="keras-preact", metric="acc")
        if int8 is not None:
            ok = int8.value <= INT8_LATENCY_TARGET_MS
            lines.append(
                f"- TFLite int8 {model} batch-1: {int8.value:.3f} ms "
                f"({'✅' if ok else '❌'} target ≤ {INT8_LATENCY_TARGET_MS} ms)"
            )
        if acc8 is not None and ref is not None:
            loss = 100 * (ref.value - acc8.value)
            ok = loss <= INT8_ACC_LOSS_POINTS
            lines.append(
                f"- TFLite int8 {model} accuracy loss vs Keras: {loss:.1f} points "
                f"({'✅' if ok else '❌'} target ≤ {INT8_ACC_LOSS_POINTS})"
            )
    accs = {
        impl: [
            r.value
            for r in records
            if r.stage == "accuracy" and r.impl == impl and r.metric == "acc"
        ]
        for impl in ("keras-preact", "pytorch")
    }
    if all(accs.values()):
        ours, _ = mean_and_spread(accs["keras-preact"])
        theirs, spread = mean_and_spread(accs["pytorch"])
        ok = ours >= theirs - max(spread, mean_and_spread(accs["keras-preact"])[1])
        lines.append(
            f"- Accuracy keras-preact {100 * ours:.1f} % vs PyTorch {100 * theirs:.1f} % "
            f"({'✅' if ok else '❌'} target: at least equal within the spread)"
        )
    return lines


def render(records: list[Record]) -> str:
    """The whole markdown section: environment, tables, targets, notes."""
    if not records:
        return "No benchmark records.\n"
    devices = sorted({_device(r) for r in records})
    versions: dict[str, str] = {}
    for r in records:
        versions.update(r.versions)
    backends = sorted({r.backend for r in records if r.impl in ("keras-preact", "plain-keras")})
    out = [
        f"Measured on {', '.join(devices)}; Keras backend {', '.join(backends) or '–'}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        "",
    ]
    out += train_table(records) + bfloat16_train_table(records) + profile_table(records)
    out += step_table(records) + feed_table(records) + image_train_table(records)
    out += infer_table(records) + precision_table(records) + accuracy_table(records)
    target_lines = targets(records)
    if target_lines:
        out += ["Targets:", "", *target_lines, ""]
    if any(_loaded(r) for r in records):
        worst = max((r.foreign_load or 0.0) for r in records)
        out.append(
            f"\\* measured while other processes kept the CPU busy (up to {worst:.2f} cores): "
            "indicative only; rerun on a quiet machine."
        )
    return "\n".join(out).rstrip() + "\n"
