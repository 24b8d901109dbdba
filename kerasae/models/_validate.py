"""Argument checks shared by the builders: clear errors, never a TF traceback."""

import numbers

import keras

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae._util.names import unknown_name_error


def positive_int(value, arg):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidType(
            f"`{arg}` must be a positive integer. Received: {arg}={value!r} "
            f"(of type {type(value).__name__})"
        )
    if value <= 0:
        raise InvalidValue(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    return int(value)


def positive_ints(values, arg, allow_empty=False):
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, (list, tuple)):
        raise InvalidType(
            f"`{arg}` must be a tuple of positive integers, e.g. (64, 32). "
            f"Received: {arg}={values!r}"
        )
    if not values and not allow_empty:
        raise InvalidValue(
            f"`{arg}` needs at least one size, e.g. (64, 32). Received: {arg}={values!r}"
        )
    return tuple(positive_int(v, f"{arg}[{i}]") for i, v in enumerate(values))


def non_negative_float(value, arg):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidType(f"`{arg}` must be a number. Received: {arg}={value!r}")
    if not value >= 0 or value == float("inf"):
        raise InvalidValue(f"`{arg}` must be finite and >= 0. Received: {arg}={value!r}")
    return float(value)


def activation(value, arg):
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidType(
            f"`{arg}` must be the name of a Keras activation, e.g. 'relu'. "
            f"Received: {arg}={value!r}"
        )
    try:
        keras.activations.get(value)
    except ValueError:
        names = [
            n for n in dir(keras.activations)
            if not n.startswith("_") and n not in ("get", "serialize", "deserialize")
        ]
        raise unknown_name_error("activation", value, names, arg) from None
    return value


def choice(value, arg, choices, what=None):
    if value not in choices:
        raise unknown_name_error(what or arg, value, list(choices), arg)
    return value


def input_shape(value, arg="input_shape", rank=None):
    """A shape of positive sizes; `rank` (if given) is the number of axes the builder needs."""
    if not isinstance(value, (list, tuple)):
        raise InvalidType(
            f"`{arg}` must be a tuple such as (28, 28, 1) or (21,). Received: {arg}={value!r}"
        )
    shape = tuple(positive_int(v, f"{arg}[{i}]") for i, v in enumerate(value))
    if rank == 3 and len(shape) != 3:
        raise InvalidValue(
            f"`{arg}` must have 3 dimensions (height, width, channels); for a "
            f"grayscale image use (H, W, 1). Received: {arg}={value!r}"
        )
    if rank is not None and len(shape) != rank:
        raise InvalidValue(f"`{arg}` must have {rank} dimensions. Received: {arg}={value!r}")
    if not shape:
        raise InvalidValue(f"`{arg}` must not be empty. Received: {arg}={value!r}")
    return shape


def seed(value, arg="seed"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidType(f"`{arg}` must be None or an int >= 0. Received: {arg}={value!r}")
    return int(value)
