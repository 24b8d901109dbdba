"""`tf.distribute` strategies by name, and where this process stands in a cluster."""

import json
import os

import tensorflow as tf

from kerasae._util.errors import InvalidValue
from kerasae._util.names import unknown_name_error
from kerasae.training.options import STRATEGIES


def tf_config():
    """`$TF_CONFIG` as a dict, or `None`."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise InvalidValue(f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={raw!r}")


def num_workers(cfg):
    """How many workers (chief included) a TF_CONFIG cluster lists."""
    cluster = (cfg or {}).get("cluster", {})
    return sum(len(v) for k, v in cluster.items() if k in ("worker", "chief"))


def _multi_worker():
    if num_workers(tf_config()) < 1:
        raise InvalidValue(
            "strategy='multi_worker' needs TF_CONFIG with a cluster and this "
            "process's task, e.g. {\"cluster\": {\"worker\": [\"host1:2222\", "
            "\"host2:2222\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}. "
            "Received: TF_CONFIG=" + repr(os.environ.get("TF_CONFIG"))
        )
    implementation = (
        tf.distribute.experimental.CommunicationImplementation.NCCL
        if tf.config.list_physical_devices("GPU")
        else tf.distribute.experimental.CommunicationImplementation.RING
    )
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation
        )
    )


def _mirrored_cpus(num_devices):
    n = 2 if num_devices is None else int(num_devices)
    if n < 1:
        raise InvalidValue(f"num_devices must be >= 1. Received: num_devices={num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != n:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
            )
        except RuntimeError:
            raise InvalidValue(
                f"Cannot split the CPU into {n} logical devices: TensorFlow is already "
                "initialized in this process. Create the strategy first, e.g. "
                f"kerasae.training.make_strategy('mirrored', num_devices={n}), before "
                f"building any model. Received: num_devices={n}"
            ) from None
    return tf.distribute.MirroredStrategy(
        [f"/cpu:{i}" for i in range(n)], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def make_strategy(name="auto", num_devices=None):
    """Creates a `tf.distribute` strategy.

    Args:
        name: `"auto"` (multi-worker if TF_CONFIG lists several workers, else
            all local GPUs if more than one, else one device), `"one"`,
            `"mirrored"` (all local GPUs; with no GPU, `num_devices` logical CPU
            devices, for testing), or `"multi_worker"` (from TF_CONFIG).
        num_devices: for `"mirrored"` without GPUs, how many logical CPU devices
            to create (must happen before TensorFlow initializes). Defaults to 2.

    Returns:
        A `tf.distribute.Strategy`.
    """
    if name not in STRATEGIES:
        raise unknown_name_error("strategy", name, STRATEGIES, "strategy")
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = ("multi_worker" if num_workers(tf_config()) > 1
                else "mirrored" if len(gpus) > 1 else "one")
    if num_devices is not None and (name != "mirrored" or gpus):
        raise InvalidValue(
            "num_devices (--num-devices) splits the CPU into logical devices for "
            f"strategy='mirrored' on a machine without GPUs; here the strategy is {name!r}"
            f"{' and there are GPUs' if gpus else ''}. Drop it, or pass "
            f"--strategy mirrored. Received: num_devices={num_devices}"
        )
    if name == "one":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "multi_worker":
        return _multi_worker()
    return tf.distribute.MirroredStrategy() if gpus else _mirrored_cpus(num_devices)


def strategy_kind(strategy):
    """`"multi_worker"`, `"mirrored"` or `"one"`."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "one"


def worker_info(strategy):
    """`(task_index, is_chief)` of this process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0, True
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                        "chief" not in resolver.cluster_spec().as_dict())
    return int(task_id), bool(is_chief)
