"""TensorFlow-only distribution helpers, imported lazily by backend-neutral code."""

import tensorflow as tf


def scale_for_replicas(loss):
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * (1.0 / replicas)
