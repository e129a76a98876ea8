"""Result files and the README tables made from them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import report
from bench.results import Record, cpu_device, read_records, write_records
from bench.timing import ForeignLoad, device_label
from keras_preact.command_line import UserError

DEVICE = "cpu: Test CPU, 2 cores"


def rec(impl, model, metric, value, stage, batch=128, **kw) -> Record:
    return Record(
        impl,
        model,
        metric,
        value,
        batch,
        kw.pop("device", DEVICE),
        "tensorflow",
        {"keras": "3"},
        stage=stage,
        **kw,
    )


def test_records_round_trip_with_required_keys_always_written(tmp_path):
    path = tmp_path / "r.jsonl"
    records = [rec("pytorch", "ResNet20V1", "lat1_ms", 3.8, "infer", batch=None, seed=None)]
    write_records(path, records)
    line = path.read_text()
    assert '"batch": null' in line and '"seed"' not in line
    assert list(read_records(path)) == records


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"impl": "onnx"}', r"r.jsonl:2: not a benchmark record: missing keys \['model'"),
        ("not json", "r.jsonl:2: not a benchmark record"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path, line, message):
    path = tmp_path / "r.jsonl"
    write_records(path, [rec("onnx", "ResNet20V1", "lat1_ms", 1.0, "infer")])
    with path.open("a") as f:
        f.write(line + "\n")
    with pytest.raises(UserError, match=message):
        list(read_records(path))


def test_report_shows_ratios_and_targets(tmp_path):
    path = tmp_path / "r.jsonl"
    write_records(
        path,
        [
            rec("keras-preact", "ResNet20V1", "train_img_s", 100.0, "train"),  # replaced below
            rec("plain-keras", "ResNet20V1", "train_img_s", 320.0, "train"),
            rec("pytorch", "ResNet20V1", "train_img_s", 200.0, "train"),
            rec("keras-preact", "ResNet164V2", "train_img_s", 20.0, "train"),
            rec("pytorch", "ResNet164V2", "train_img_s", 18.0, "train"),
            rec("keras-preact", "ResNet20V1", "train_img_s", 300.0, "train"),
            rec("onnx", "ResNet20V1", "lat1_ms", 0.8, "infer", batch=1),
            rec("pytorch-onnx", "ResNet20V1", "lat1_ms", 0.84, "infer", batch=1),
            rec("tflite-int8", "ResNet20V1", "lat1_ms", 0.4, "infer", batch=1),
            rec("tflite-int8", "ResNet20V1", "acc", 0.61, "infer", batch=32),
            rec("keras-preact", "ResNet20V1", "acc", 0.625, "infer", batch=32),
            *(
                rec(
                    impl,
                    "ResNet20V1",
                    "acc",
                    acc,
                    "accuracy",
                    seed=seed,
                    n=517,
                    extra={"epochs": 10, "train_images": 5170},
                )
                for impl, accs in (
                    ("keras-preact", (0.60, 0.62, 0.64)),
                    ("pytorch", (0.6, 0.6, 0.6)),
                )
                for seed, acc in enumerate(accs)
            ),
            rec("pytorch", "ResNet20V1", "train_time_s", 100.0, "accuracy", seed=0),
            rec("keras-preact", "ResNet20V1", "train_time_s", 80.0, "accuracy", seed=0),
        ],
    )
    text = report.render(report.load([path]))
    assert (
        "| ResNet20V1 | 300.0 | 320.0 | 200.0 | – | 1.50× ✅ | – | 0.94× ❌ (target ≥ 1.0×) |"
        in text
    )
    assert "| ResNet164V2 | 20.0 | – | 18.0 | – | 1.11× ❌ (target ≥ 1.3×) | – | – |" in text
    assert "| ResNet20V1 | onnx | – | 0.80 | – | – | 1.05× ✅ |" in text
    assert "| ResNet20V1 | keras-preact | 3 | 10 | 5170 | 517 | 62.0 ± 2.0 % | 80 |" in text
    assert "TFLite int8 ResNet20V1 batch-1: 0.400 ms (✅ target ≤ 0.5 ms)" in text
    assert "accuracy loss vs Keras: 1.5 points (❌ target ≤ 1.0)" in text
    assert "under load" not in text and "\\*" not in text


def test_onnx_runtimes_that_took_turns_compare_by_per_round_ratios():
    def onnx_rec(impl, other, rounds):
        extra = {"interleaved_with": [other], "rounds_lat1_ms": rounds}
        return rec(impl, "ResNet20V1", "lat1_ms", 0.5, "infer", batch=1, extra=extra)

    # Medians 0.50 vs 0.50, but in every round but one ours answered 20 % faster.
    ours = onnx_rec("onnx", "pytorch-onnx", [0.50, 0.45, 0.40, 0.90])
    peer = onnx_rec("pytorch-onnx", "onnx", [0.60, 0.54, 0.48, 0.50])
    text = report.render([ours, peer])
    assert "| ResNet20V1 | onnx | – | 0.50 | – | – | 1.20× ✅ |" in text
    assert "took turns" in text
    alone = [rec("onnx", "ResNet20V1", "lat1_ms", 0.5, "infer", batch=1), peer]
    assert "| ResNet20V1 | onnx | – | 0.50 | – | – | 1.00× ✅ |" in report.render(alone)


def test_training_against_torch_compile_with_its_compile_time_apart():
    def img_s(impl, windows, variant=None, **extra):
        extra = {"turn_group": "g", "windows_img_s": windows, **extra}
        r = rec(impl, "ResNet20V1", "train_img_s", sorted(windows)[1], "train", extra=extra)
        return dataclasses.replace(r, variant=variant)

    records = [
        img_s("keras-preact", [500, 520, 540]),
        img_s("pytorch", [360, 370, 380]),
        # Faster than keras-preact in two rounds of three: the paired ratio is below 1.
        img_s("pytorch-compile", [520, 540, 500], compile_s=41.3),
        img_s("keras-preact", [1000, 1000, 1000], "bfloat16"),
        img_s("pytorch-compile", [800, 900, 1000], "bfloat16"),
        img_s("pytorch", [700, 700, 700], "bfloat16"),
    ]
    text = report.render(records)
    assert (
        "| ResNet20V1 | 520.0 | – | 370.0 | 520.0 | 1.41× ❌ (target ≥ 1.5×) "
        "| 0.96× ❌ (target ≥ 1.0×) | – |" in text
    )
    assert "torch.compile's first (compiling) step: ResNet20V1 41 s." in text
    assert "| ResNet20V1 | 1000.0 | 700.0 | 900.0 | 1.43× | 1.11× ✅ |" in text


def test_inference_classes_compare_the_fastest_verified_artifact_with_the_fastest_peer():
    def lat(impl, ms, rounds=None, **extra):
        if rounds:
            others = ["openvino-bfloat16", "pytorch-openvino-bfloat16"]
            extra["interleaved_with"] = [o for o in others if o != impl]
            extra["rounds_lat1_ms"] = rounds
        return rec(impl, "ResNet50V1", "lat1_ms", ms, "infer", batch=1, extra=extra)

    records = [
        lat("onnx", 40.0, precision="float32", export_verified=True),
        lat("openvino-float32", 38.0, precision="float32", export_verified=True),
        lat("pytorch-compile", 36.0, precision="float32"),
        lat("pytorch-openvino-float32", 37.0, precision="float32"),
        # Unverified artifacts of a trained network do not count, however fast.
        lat("tflite-int8", 5.0, precision="int8", export_verified=False, weights="trained seed 0"),
        lat("openvino-int8", 12.0, precision="int8, other ops bfloat16", export_verified=True),
        lat("pytorch-onnx-int8", 15.0, precision="int8 (QDQ), float32 input"),
        lat("openvino-bfloat16", 22.0, [20.0, 22.0, 24.0], precision="bfloat16"),
        lat("pytorch-openvino-bfloat16", 22.0, [22.0, 24.2, 26.4], precision="bfloat16"),
    ]
    text = report.render(records)
    assert "| ResNet50V1 | openvino-float32 | float32 | 38.00 |" in text
    assert (
        "| ResNet50V1 | float32 | 1 | openvino-float32 (float32) 38.00 ms "
        "| pytorch-compile (float32) 36.00 ms | 0.95× ❌ (target ≥ 1.0×) |" in text
    )
    # Paired: 1.1 in every round, although the medians are equal.
    assert (
        "| ResNet50V1 | bfloat16/float16 | 1 | openvino-bfloat16 (bfloat16) 22.00 ms "
        "| pytorch-openvino-bfloat16 (bfloat16) 22.00 ms | 1.10× ✅ |" in text
    )
    assert (
        "| ResNet50V1 | int8 | 1 | openvino-int8 (int8, other ops bfloat16) 12.00 ms "
        "| pytorch-onnx-int8 (int8 (QDQ), float32 input) 15.00 ms | 1.25× ✅ |" in text
    )
    # A random-weight network's low-precision files cannot agree with Keras' flat probabilities:
    # they count as exported.
    records[4].extra["weights"] = "random"
    assert "| ResNet50V1 | int8 | 1 | tflite-int8 (int8) 5.00 ms " in report.render(records)


def test_the_step_profile_shows_shares_and_the_convolutions_bound(tmp_path):
    def part(name, ms, **extra):
        return rec(
            "keras-preact", "ResNet20V1", "step_ms", ms, "profile", extra={"part": name, **extra}
        )

    path = tmp_path / "r.jsonl"
    write_records(
        path,
        [
            part("convolution forward", 60.0, calls_per_step=21, gflop_s=200.0),
            part("convolution filter gradient", 68.0, calls_per_step=19, gflop_s=150.0),
            part("batch norm backward", 12.0, calls_per_step=19),
            part("outside oneDNN", 20.0),
            part("whole step", 160.0),
            rec("pytorch", "ResNet20V1", "train_img_s", 500.0, "train"),
        ],
    )
    # Every part survives loading (one record per part, not one per metric).
    text = report.render(report.load([path]))
    assert "| ResNet20V1 | convolution forward | 60.0 | 38 % | 21 | 200 |" in text
    assert "| ResNet20V1 | outside oneDNN | 20.0 | 12 % |  |  |" in text
    assert "| ResNet20V1 | whole step | 160.0 | 100 % |  |  |" in text
    # 128 images in 128 ms of convolutions: at most 1,000 images/s, twice PyTorch's 500.
    assert (
        "- ResNet20V1: the convolutions take 128 of 160 ms per step at 173 GFLOP/s; with "
        "everything else free a step would train at most 1000 images/s, 2.00× PyTorch's 500."
    ) in text


def test_measurements_under_load_are_starred(tmp_path):
    path = tmp_path / "r.jsonl"
    loaded = device_label(DEVICE, 1.3)
    write_records(
        path,
        [
            rec(
                "pytorch",
                "ResNet20V1",
                "train_img_s",
                50.0,
                "train",
                device=loaded,
                foreign_load=1.3,
            )
        ],
    )
    text = report.render(report.load([path]))
    assert "| 50.0\\* |" in text
    assert "up to 1.30 cores" in text
    assert f"Measured on {DEVICE};" in text


BUSY = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
# Started by a process that ends at once: not this process's child (whose CPU time is its own).
DETACHED = (
    "import subprocess, sys\n"
    f"busy = subprocess.Popen([sys.executable, '-c', {BUSY!r}], "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(busy.pid)"
)


def test_foreign_load_counts_other_processes_only():
    starter = subprocess.run(
        [sys.executable, "-c", DETACHED], capture_output=True, text=True, check=True
    )
    busy = int(starter.stdout)
    try:
        time.sleep(0.2)
        with ForeignLoad() as load:
            time.sleep(1.0)
    finally:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{busy}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    # The other process kept one core busy while this process slept.
    assert load.cores is not None and load.cores >= 0.6
    assert device_label(DEVICE, load.cores).startswith(f"{DEVICE} (under load: ")
    assert device_label(DEVICE, 0.1) == DEVICE


@pytest.mark.parametrize(
    ("flags", "isa"),
    [
        ("fpu sse2 avx fma avx2", ", AVX2"),
        ("avx2 avx512f avx512bw avx512_vnni avx512_bf16", ", AVX-512 VNNI BF16"),
        ("avx2 avx_vnni avx512f amx_tile", ", AVX-512 VNNI AMX"),
        ("fpu sse2", ""),
    ],
)
def test_device_names_the_vector_isa_that_picks_the_kernels(flags, isa):
    cpuinfo = f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nflags\t: avx512f\n"
    assert cpu_device(cpuinfo).startswith("cpu: Some CPU, ")
    assert cpu_device(cpuinfo).endswith(" cores" + isa)


def test_device_names_cpu_family_and_model_when_cpuinfo_has_them():
    # Two VMs that both say "AMD EPYC" must not look like one machine in the results.
    cpuinfo = (
        "processor\t: 0\ncpu family\t: 23\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
        "flags\t\t: avx2\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\n"
    )
    assert cpu_device(cpuinfo).startswith("cpu: AMD EPYC (family 23, model 1), ")
    assert cpu_device(cpuinfo).endswith(" cores, AVX2")


def test_image_tables_pair_keras_preact_with_torchvision_by_rounds():
    folder = {"train_images": 2000, "mean_width": 400.0, "mean_height": 401.0, "mean_kib": 89.7}

    def turn(impl, stage, metric, model, batch, windows, **extra):
        extra = {"turn_group": stage, "windows_img_s": windows, **extra}
        return rec(impl, model, metric, windows[0], stage, batch=batch, extra=extra)

    feed = {"workers": 2, "image_size": 224, "scale_range": [256, 480], "folder": folder}
    image = {"image_size": 224, "folder": folder}
    records = [
        # Medians 150 vs 100, but round by round keras-preact was 2x faster.
        turn("keras-preact", "feed", "feed_img_s", "JPEG folder", 64, [150, 160, 120], **feed),
        turn("pytorch", "feed", "feed_img_s", "JPEG folder", 64, [75, 80, 60], **feed),
        turn("keras-preact", "train", "train_img_s", "ResNet50V1", 16, [6.0, 6.3, 6.1], **image),
        turn("pytorch", "train", "train_img_s", "ResNet50V1", 16, [4.0, 4.2, 4.1], **image),
        turn("keras-preact", "train", "train_img_s", "ResNet20V1", 128, [300.0, 300.0, 300.0]),
    ]
    records[3].extra["loader_workers"] = 2
    text = report.render(records)
    assert "| 2 | 64 | 150.0 | 75.0 | 2.00× ✅ |" in text
    assert "shorter side random in [256, 480], random 224×224 crop" in text
    assert "2,000 JPEGs of 400×401 pixels and 90 KiB on average" in text
    assert "Training at 224×224 from JPEG files" in text
    assert "DataLoader of 2 worker processes" in text
    assert "| ResNet50V1 | 16 | 6.0 | 4.0 | 1.50× |" in text
    # The CIFAR networks keep their own table and batch.
    assert "Training, images/s (batch 128" in text
    assert "| ResNet20V1 | 300.0 | – | – | – | – |" in text
    slower = [
        dataclasses.replace(r, extra={**r.extra, "windows_img_s": [50.0] * 3}) for r in records[:1]
    ]
    assert "| 0.67× ❌ (target ≥ 1.0×) |" in report.render([*slower, records[1]])
