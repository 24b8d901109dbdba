"""TensorFlow-only: a custom `compute_loss` returns its share of the replicas' loss, and
batch statistics span the replicas."""

import tensorflow as tf


def scale_for_replicas(loss):
    """Divides `loss` by the replica count of the strategy in scope (1: unchanged)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * (1.0 / replicas)


def global_mean(values):
    """The mean of `values` over the global batch: every replica's values (one
    all-reduce) inside a replica context of several, else this call's."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.reduce_mean(values)
    total, count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [
        tf.reduce_sum(values), tf.cast(tf.size(values), values.dtype)])
    return total / count
