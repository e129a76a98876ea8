"""The cost of named weights: a first ``ResNet50V1(weights="imagenet")`` (fetch from 127.0.0.1,
convert, cache) and a cached second call, against building the model and loading one
``.weights.h5`` with ``model.load_weights``.

    python -m bench.weights_speed [--repeats 3]

The served file is a random keras.applications ResNet50 in the layout of the file Keras publishes
(the real one cannot be fetched here); the times do not depend on the values.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.weights_speed", description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="weights-speed-"))
    os.environ["KERAS_PREACT_CACHE"] = str(work / "cache")
    os.environ.pop("KERAS_PREACT_WEIGHTS_MIRROR", None)
    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root / "tests"), str(root / "tests" / "keras_preact")]
    import dataclasses

    import keras
    from convert_helpers import randomize_keras, save_keras2_h5
    from weights_server import Server

    import keras_preact as kp

    source = randomize_keras(keras.applications.ResNet50(weights=None), seed=0)
    h5 = work / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    save_keras2_h5(source, h5)
    server = Server()

    class Patch:  # monkeypatch's setattr, for a script
        def setattr(self, obj, name, value):
            setattr(obj, name, value)

    entry = server.publish("keras.applications:imagenet", "resnet50v1", h5, Patch())
    assert dataclasses.is_dataclass(entry)
    kp.ResNet50V1()  # warm-up: the first build in a process pays for imports and tracing

    def timed(fn) -> float:
        keras.backend.clear_session()
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    first = timed(lambda: kp.ResNet50V1(weights="imagenet"))
    server.stop()
    local = work / "r50.weights.h5"
    kp.ResNet50V1(weights="imagenet").save_weights(local)
    cached, baseline, build = [], [], []
    for _ in range(args.repeats):
        cached.append(timed(lambda: kp.ResNet50V1(weights="imagenet")))
        baseline.append(
            timed(lambda: kp.ResNet50V1(preprocessing="imagenet_caffe").load_weights(local))
        )
        build.append(timed(lambda: kp.ResNet50V1(preprocessing="imagenet_caffe")))
    size = h5.stat().st_size / 1e6
    print(f"served file: {size:.0f} MB (keras.applications layout) from 127.0.0.1")
    print(f"first ResNet50V1(weights='imagenet') (fetch + convert + cache): {first:.2f} s")
    print(
        f"cached ResNet50V1(weights='imagenet'): {statistics.median(cached):.2f} s (median of {args.repeats})"
    )
    print(f"ResNet50V1() + load_weights(.weights.h5): {statistics.median(baseline):.2f} s")
    print(f"ResNet50V1() alone: {statistics.median(build):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
