"""TAESD-family checkpoints (PyTorch state dicts) loaded into `TinyAE` models.

The published encoder and decoder are `nn.Sequential`s, so a tensor's name is the
module's index in the sequence, then its place inside a block: `<i>.weight` and
`<i>.bias` for a plain convolution, `<i>.conv.<0|2|4>.*` for a block's three
convolutions, `<i>.pool.<0|1|3>.*` for its global branch (expansion, GroupNorm,
projection). `encoder_table` and `decoder_table` walk `TinyAE`'s layout in the same
order and name, for every upstream tensor, the Keras layer and variable it fills.
Convolution kernels go from PyTorch's (out, in, h, w) to Keras's (h, w, in, out);
values are cast to float32. A tensor missing, left over or of another shape is
refused by name, before any variable is touched.
"""

import re

import numpy as np

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.models.families.tiny import TinyAE
from kerasae.presets.converted import register_converter
from kerasae.presets.torch_state import read_state_dict

_CONV = ("kernel", "bias")


def _block(index, name, norm):
    rows = [(f"{index}.conv.{k}.{p}", f"{name}_conv_{j}", slot)
            for j, k in enumerate((0, 2, 4)) for p, slot in (("weight", "kernel"),
                                                                ("bias", "bias"))]
    if norm:
        rows += [(f"{index}.pool.0.weight", f"{name}_expand", "kernel"),
                 (f"{index}.pool.1.weight", f"{name}_norm", "gamma"),
                 (f"{index}.pool.1.bias", f"{name}_norm", "beta"),
                 (f"{index}.pool.3.weight", f"{name}_project", "kernel")]
    return rows


def _conv(index, name, bias=True):
    return [(f"{index}.weight", name, "kernel")] + (
        [(f"{index}.bias", name, "bias")] if bias else [])


def encoder_table(blocks, midblock_norm):
    """`[(upstream name, Keras layer, variable)]` of a `TinyAE` encoder with `blocks`:
    `0` the input convolution, then the full-resolution blocks, then per stage the
    stride-2 convolution (no bias) and its blocks, and last the code convolution."""
    stages, rows, i = len(blocks) - 1, _conv(0, "conv_in"), 1
    for level, count in enumerate(blocks):
        if level:
            rows, i = rows + _conv(i, f"down_{level}", bias=False), i + 1
        for j in range(count):
            rows, i = rows + _block(i, f"block_{level}_{j}",
                                    midblock_norm and level == stages), i + 1
    return rows + _conv(i, "code")


def decoder_table(blocks, midblock_norm, code_clamp=True):
    """The same for a decoder: `0` the soft clamp (no weights), the input convolution and
    its ReLU, then per stage from the lowest its blocks, the upsampling (no weights) and
    a convolution (no bias), then the full-resolution blocks and the output convolution."""
    stages, i = len(blocks) - 1, int(bool(code_clamp))
    rows, i = _conv(i, "conv_in"), i + 2
    for level in range(stages, -1, -1):
        for j in range(blocks[level]):
            rows, i = rows + _block(i, f"block_{level}_{j}",
                                    midblock_norm and level == stages), i + 1
        if level:
            rows, i = rows + _conv(i + 1, f"up_{level}", bias=False), i + 2
    return rows + _conv(i, "reconstruction")


def _names(names, most=6):
    names = sorted(names, key=lambda n: [int(t) if t.isdigit() else t
                                         for t in re.split(r"(\d+)", n)])
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most
                                      else "")


def _converted(submodel, table, state):
    """`[(variable, float32 value)]` for every row of `table`, all checked first."""
    part, expected = submodel.name, {name for name, _, _ in table}
    missing, extra = expected - set(state), set(state) - expected
    fix = ("Build the model with the checkpoint's layout (latent_channels, width, blocks, "
           "midblock_norm), or load it with tiny_ae_from_pth, which reads the layout.")
    if missing or extra:
        problem = "; ".join(filter(None, [
            missing and f"lacks {len(missing)} the model needs ({_names(missing)})",
            extra and f"holds {len(extra)} the model has no place for ({_names(extra)})"]))
        raise InvalidValue(f"The {part} checkpoint does not fit the model: it {problem}. "
                           f"{fix} Received: {len(state)} tensors")
    pairs = []
    for name, layer_name, slot in table:
        variable, value = getattr(submodel.get_layer(layer_name), slot), np.asarray(state[name])
        if slot == "kernel" and value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # PyTorch (out, in, h, w) -> (h, w, in, out)
        if tuple(value.shape) != tuple(variable.shape):
            raise InvalidValue(
                f"The {part} checkpoint's {name} has shape {tuple(state[name].shape)}, which "
                f"gives {tuple(value.shape)} for {layer_name}.{slot} where the model holds "
                f"{tuple(variable.shape)}. {fix} Received: {name}={tuple(state[name].shape)}")
        pairs.append((variable, value.astype("float32")))
    return pairs


def load_taesd_weights(model, encoder_state, decoder_state):
    """Fills a `TinyAE` model with a TAESD-family checkpoint (TAEF2, TAESD, ...).

    Args:
        model: a model built by `TinyAE` with the checkpoint's layout.
        encoder_state: `{name: array}` of the encoder (e.g. `read_state_dict(path)`).
        decoder_state: the same of the decoder.

    Returns:
        `model`, with every variable of both sub-models set.

    Raises:
        ValueError: a tensor is missing, left over, or of another shape (by name);
            nothing is set then.
    """
    config = getattr(model, "builder_config", None) or {}
    if getattr(model, "builder_name", None) != "tiny_ae":
        raise InvalidType("TAESD checkpoints load into a model built by TinyAE. Received: "
                          f"model={getattr(model, 'name', type(model).__name__)!r}")
    blocks, norm = tuple(config["blocks"]), bool(config["midblock_norm"])
    pairs = (_converted(model.encoder, encoder_table(blocks, norm), encoder_state)
             + _converted(model.decoder, decoder_table(blocks, norm, config["code_clamp"]),
                          decoder_state))
    for variable, value in pairs:
        variable.assign(value)
    return model


def taesd_layout(encoder_state):
    """The `TinyAE` arguments an encoder checkpoint was made with: `latent_channels`,
    `width`, `blocks`, `midblock_norm`, and the image channels of `input_shape`."""
    indices = sorted({int(k.split(".")[0]) for k in encoder_state if k.split(".")[0].isdigit()})
    if not indices or indices[0] != 0 or not all(
            np.ndim(encoder_state.get(f"{i}.weight")) == 4 for i in (0, indices[-1])):
        raise InvalidValue("This is not a TAESD-family encoder checkpoint: it does not start "
                           "with the input convolution '0.weight' and end with the code's "
                           f"(is it the decoder?). Received: names {_names(encoder_state)}")
    blocks = []
    for i in indices[:-1]:
        if f"{i}.weight" in encoder_state:
            blocks.append(0)  # a convolution opens a resolution: the input one, then strided
        else:
            blocks[-1] += 1
    first, last = encoder_state[f"{indices[0]}.weight"], encoder_state[f"{indices[-1]}.weight"]
    return dict(latent_channels=int(last.shape[0]), width=int(first.shape[0]),
                blocks=tuple(blocks), input_shape=(None, None, int(first.shape[1])),
                midblock_norm=any(".pool." in k for k in encoder_state))


def tiny_ae_from_pth(encoder_path, decoder_path, **kwargs):
    """A `TinyAE` holding a published TAESD-family checkpoint, e.g. TAEF2's.

    The layout is read from the encoder's tensors, and the files are read without
    torch and without running their pickles (`kerasae.presets.torch_state`).

    Args:
        encoder_path: the encoder's `.pth` (or `.safetensors`) file.
        decoder_path: the decoder's.
        **kwargs: other `TinyAE` arguments (`input_shape`, `clip_output`, `name`,
            `corruption`, ...).

    Returns:
        The model.

    Example:
        >>> model = tiny_ae_from_pth("taef2_encoder.pth", "taef2_decoder.pth")  # doctest: +SKIP
    """
    encoder_state, decoder_state = read_state_dict(encoder_path), read_state_dict(decoder_path)
    model = TinyAE(**{**taesd_layout(encoder_state), **kwargs})
    return load_taesd_weights(model, encoder_state, decoder_state)


@register_converter("taesd")
def write_taesd_weights(sources, kwargs, out_path):
    """The zoo's converter `"taesd"`: the `"encoder"` and `"decoder"` checkpoints of
    `sources` written as the `.weights.h5` of a `TinyAE(**kwargs)` (a preset's
    `config.json` arguments) at `out_path` (`kerasae.presets.converted`)."""
    model = tiny_ae_from_pth(sources["encoder"], sources["decoder"], **kwargs)
    model.save_weights(out_path)
