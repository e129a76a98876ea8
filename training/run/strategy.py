"""Where the replicas run: ``tf.distribute`` strategies on TensorFlow, ``keras.distribution`` on JAX.

``check`` validates the options without touching a device (``StrategyPlan``); ``create`` configures the
devices and returns a ``Runtime`` to build, compile and train in. The global batch is split evenly.
On TensorFlow: ``default`` (TensorFlow's placement), ``one_device``, ``mirrored`` (over ``--devices``,
every GPU, or ``--cpu-replicas N`` logical CPUs), ``multi_worker`` (``TF_CONFIG``'s cluster, trained by
``training.run.multi_worker_fit``). On JAX, ``mirrored`` is ``keras.distribution.DataParallel``, there
is no ``multi_worker``, and TensorFlow is never imported here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import keras

from keras_preact.command_line import UserError
from training.choices import JIT_MODES, PRECISIONS, STRATEGIES

_DEVICE = re.compile(r"^/?(?:device:)?(cpu|gpu|tpu):(\d+)$", re.IGNORECASE)
_ADDRESS = re.compile(r"[^\s:]+:\d{1,5}")


@dataclass(frozen=True)
class StrategyOptions:
    """How to place and compile the training step (the ``--strategy`` group of the CLI)."""

    name: str = "default"
    devices: tuple[str, ...] = ()
    cpu_replicas: int | None = None
    sync_bn: bool = False
    jit_compile: str = "auto"
    mixed_precision: str = "float32"


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def normalize_device(spec: str) -> tuple[str, int]:
    """``"1"`` (a GPU index), ``"gpu:1"``, ``"/GPU:1"`` or ``"/device:GPU:1"`` -> ``("gpu", 1)``."""
    spec = spec.strip()
    if spec.isdigit():
        return "gpu", int(spec)
    match = _DEVICE.match(spec)
    if not match:
        raise UserError(
            f"unknown device {spec!r}: use a GPU index (0), or TYPE:INDEX such as gpu:1 or cpu:0"
        )
    return match.group(1).lower(), int(match.group(2))


def read_tf_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``TF_CONFIG``, parsed and checked for ``multi_worker``."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        raise UserError(
            "--strategy multi_worker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
            '"index": 0}}'
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(config, dict):
        raise UserError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise UserError("TF_CONFIG has no 'cluster' object mapping job names to 'host:port' lists")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise UserError(
                f"TF_CONFIG cluster job {job!r} must be a non-empty list of 'host:port'"
            )
        bad = [a for a in addresses if not isinstance(a, str) or not _ADDRESS.fullmatch(a)]
        if bad:
            raise UserError(
                f"TF_CONFIG cluster job {job!r} has address {bad[0]!r}, expected 'host:port'"
            )
    unknown_jobs = ", ".join(sorted(set(cluster) - {"chief", "worker"}))
    if unknown_jobs:
        raise UserError(
            f"TF_CONFIG cluster has job(s) {unknown_jobs}: multi_worker uses only 'chief' and 'worker'"
        )
    if not isinstance(task, dict):
        raise UserError("TF_CONFIG has no 'task' object with 'type' and 'index'")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise UserError(
            f"TF_CONFIG task type {kind!r} is not a job of the cluster ({', '.join(cluster)})"
        )
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise UserError(
            f"TF_CONFIG task index {index!r} is out of range for job {kind!r} "
            f"(0..{len(cluster[kind]) - 1})"
        )
    return config


def tf_config_worker_index(config: Mapping[str, Any]) -> int:
    """This process's rank in ``config``'s cluster: 0 is the chief (``chief``, else worker 0)."""
    task, cluster = config["task"], config["cluster"]
    return 0 if task["type"] == "chief" else task["index"] + ("chief" in cluster)


@dataclass(frozen=True)
class StrategyPlan:
    """``StrategyOptions`` checked for the backend, with the devices and ``TF_CONFIG`` parsed."""

    options: StrategyOptions
    backend: str
    devices: tuple[tuple[str, int], ...] = ()
    tf_config: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def worker_index(self) -> int:
        return tf_config_worker_index(self.tf_config) if self.tf_config is not None else 0


def check(options: StrategyOptions) -> StrategyPlan:
    for what, value, allowed in (
        ("strategy", options.name, STRATEGIES),
        ("--jit-compile", options.jit_compile, JIT_MODES),
        ("mixed precision", options.mixed_precision, PRECISIONS),
    ):
        if value not in allowed:
            raise UserError(f"unknown {what} {value!r}: choose one of {', '.join(allowed)}")
    devices = tuple(normalize_device(device) for device in options.devices)
    if options.devices and options.name in ("default", "multi_worker"):
        raise UserError(f"--devices applies to one_device and mirrored, not {options.name}")
    if options.name == "one_device" and len(options.devices) > 1:
        raise UserError(f"one_device takes one device, got {len(options.devices)}")
    if options.cpu_replicas is not None:
        if options.cpu_replicas < 1:
            raise UserError(f"--cpu-replicas must be at least 1, got {options.cpu_replicas}")
        if options.name != "mirrored":
            raise UserError(f"--cpu-replicas applies to the mirrored strategy, not {options.name}")
        if options.devices:
            raise UserError("give either --devices or --cpu-replicas, not both")
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        raise UserError(f"training runs on the tensorflow or jax backend, not {backend!r}")
    tf_config = None
    if options.name == "multi_worker":
        if options.jit_compile == "on":
            raise UserError(
                "--jit-compile on is not available with multi_worker (its training loop runs the "
                "step as a plain tf.function); use auto or off"
            )
        if backend != "tensorflow":
            raise UserError(
                "multi_worker needs the TensorFlow backend (KERAS_BACKEND=tensorflow); on JAX use "
                "--strategy mirrored on each machine's devices"
            )
        tf_config = read_tf_config()
    return StrategyPlan(options, backend, devices, tf_config)


@dataclass
class Runtime:
    """The devices a run trains on: a ``tf.distribute`` strategy or a ``keras.distribution``."""

    options: StrategyOptions
    backend: str
    num_replicas: int
    devices: tuple[str, ...]
    strategy: Any = None
    distribution: Any = None
    worker_index: int = 0
    num_workers: int = 1

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    @property
    def custom_loop(self) -> bool:
        return self.options.name == "multi_worker"

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        placement = self.strategy or self.distribution
        return contextlib.nullcontext() if placement is None else placement.scope()

    def check_batch(self, global_batch: int) -> int:
        if global_batch % self.num_replicas:
            raise UserError(
                f"global batch {global_batch} does not split evenly over {self.num_replicas} "
                f"replicas: use a multiple of {self.num_replicas}"
            )
        return global_batch // self.num_replicas

    def check_eval(self, num_examples: int, batch: int) -> None:
        """Test batches must split evenly (on TensorFlow the last one need not)."""
        if batch % self.num_replicas:
            raise UserError(
                f"test batch {batch} does not split evenly over {self.num_replicas} replicas: use a "
                f"multiple of {self.num_replicas} for --eval-batch-size"
            )
        if self.backend == "jax" and num_examples % self.num_replicas:
            raise UserError(
                f"the {num_examples} test images do not split evenly over {self.num_replicas} JAX "
                "devices: use a device count that divides it (--devices)"
            )

    def jit_compile(self) -> bool | str:
        return {"auto": "auto", "on": True, "off": False}[self.options.jit_compile]

    @property
    def sync_bn(self) -> bool:
        """Synchronised BatchNormalization: TensorFlow only (JAX's step sees the global batch)."""
        return self.options.sync_bn and self.backend == "tensorflow"

    @contextlib.contextmanager
    def dtype_policy(self) -> Iterator[None]:
        previous = keras.config.dtype_policy()
        if self.options.mixed_precision != "float32":
            keras.config.set_dtype_policy(f"mixed_{self.options.mixed_precision}")
        try:
            yield
        finally:
            keras.config.set_dtype_policy(previous)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "strategy": self.options.name,
            "replicas": self.num_replicas,
            "devices": list(self.devices),
            "workers": self.num_workers,
            "worker_index": self.worker_index,
            "sync_bn": self.sync_bn,
            "jit_compile": self.options.jit_compile,
            "mixed_precision": self.options.mixed_precision,
        }


_STRATEGIES: dict[tuple[Any, ...], Any] = {}


def create(plan: StrategyPlan) -> Runtime:
    """The ``Runtime`` of ``plan`` (before any other TensorFlow work). A strategy is reused for the
    same placement: a second ``MirroredStrategy`` over the same devices breaks the collectives."""
    return _create_jax(plan) if plan.backend == "jax" else _create_tensorflow(plan)


def _cached(key: tuple[Any, ...], make: Any) -> Any:
    if key not in _STRATEGIES:
        _STRATEGIES[key] = make()
    return _STRATEGIES[key]


def _named_devices(plan: StrategyPlan, count: Callable[[str], int]) -> list[str]:
    """``--devices`` as ``kind:index``, checked against ``count(kind)`` devices present."""
    names = []
    for spec, (kind, index) in zip(plan.options.devices, plan.devices, strict=True):
        have = count(kind)
        if index >= have:
            raise UserError(
                f"device {spec!r} does not exist: this machine has {have} {kind.upper()} device(s)"
            )
        names.append(f"{kind}:{index}")
    return names


def _check_cpu_replicas(wanted: int, have: int, framework: str) -> None:
    if have != wanted:
        raise UserError(
            f"--cpu-replicas {wanted}: {framework} is already initialised with {have} CPU "
            "device(s) in this process; set it in a fresh process"
        )


def _create_tensorflow(plan: StrategyPlan) -> Runtime:
    # Imported here: only the TensorFlow backend needs it (JAX trains without TensorFlow).
    import tensorflow as tf

    options = plan.options
    if options.cpu_replicas is not None:  # only possible before TensorFlow initialises
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration() for _ in range(options.cpu_replicas)]
        try:
            tf.config.set_logical_device_configuration(cpu, logical)
        except RuntimeError:
            have = len(tf.config.list_logical_devices("CPU"))
            _check_cpu_replicas(options.cpu_replicas, have, "TensorFlow")
    if plan.tf_config is not None:  # first: its collectives must be set up before TensorFlow starts
        strategy = _cached(("multi_worker",), tf.distribute.MultiWorkerMirroredStrategy)
        return Runtime(
            options,
            "tensorflow",
            strategy.num_replicas_in_sync,
            tuple(strategy.extended.worker_devices),
            strategy=strategy,
            worker_index=plan.worker_index,
            num_workers=sum(len(v) for v in plan.tf_config["cluster"].values()),
        )
    gpus = tf.config.list_logical_devices("GPU")
    named = _named_devices(plan, lambda kind: len(tf.config.list_logical_devices(kind.upper())))
    devices = tuple(f"/{name}" for name in named)
    if options.name == "default":
        return Runtime(options, "tensorflow", 1, (gpus[0].name if gpus else "/cpu:0",))
    if options.name == "one_device":
        device = devices[0] if devices else ("/gpu:0" if gpus else "/cpu:0")
        strategy = _cached(("one_device", device), lambda: tf.distribute.OneDeviceStrategy(device))
        return Runtime(options, "tensorflow", 1, (device,), strategy=strategy)
    if not devices:
        listed = tf.config.list_logical_devices("GPU" if options.cpu_replicas is None else "CPU")
        devices = tuple(d.name for d in listed) or ("/cpu:0",)
    strategy = _cached(
        ("mirrored", devices), lambda: tf.distribute.MirroredStrategy(devices=list(devices))
    )
    return Runtime(options, "tensorflow", strategy.num_replicas_in_sync, devices, strategy=strategy)


def _create_jax(plan: StrategyPlan) -> Runtime:
    options = plan.options
    # Training on JAX needs no TensorFlow (the NumPy feed), but where it is installed Keras uses it
    # anyway (seeding, the TensorBoard callback): keep it off the accelerators JAX uses.
    if tensorflow_installed():
        import tensorflow as tf  # installed but optional: imported only to hide the GPUs from it

        with contextlib.suppress(RuntimeError):  # already initialised (e.g. by an earlier run)
            tf.config.set_visible_devices([], "GPU")
    available = None
    if options.cpu_replicas is not None:
        # Read when JAX initialises its CPU backend, i.e. on the first device query below.
        flag = f"--xla_force_host_platform_device_count={options.cpu_replicas}"
        flags = re.sub(
            r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")
        )
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
        available = keras.distribution.list_devices("cpu")
        _check_cpu_replicas(options.cpu_replicas, len(available), "JAX")

    def count(kind: str) -> int:
        try:
            return len(keras.distribution.list_devices(kind))
        except RuntimeError:  # JAX has no backend of that kind here
            return 0

    chosen = _named_devices(plan, count) or available or keras.distribution.list_devices()
    if options.name in ("default", "one_device"):
        chosen = chosen[:1]
    distribution = (
        None if options.name == "default" else keras.distribution.DataParallel(devices=chosen)
    )
    return Runtime(options, "jax", len(chosen), tuple(chosen), distribution=distribution)
