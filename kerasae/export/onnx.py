"""The ONNX stage: encoder, decoder (and optionally the whole autoencoder) as ONNX graphs.

Each graph is converted by Keras's own ONNX export (`Model.export(format="onnx")`,
tf2onnx underneath), then checked (no random ops, only ops ONNX defines,
`onnx.checker`) and finished: outputs in the order and with the names of the
signature, the batch axis named `batch`, the export's metadata in
`metadata_props`.
"""

import contextlib
import json
import logging
import os
import tempfile
import warnings

import keras
import onnx

from kerasae.export.formats import (
    RESERVED,
    ROLE_SIGNATURE,
    ExportError,
    describe_nodes,
    is_random_op,
    random_ops_error,
)
from kerasae.export.graphs import crop_to, specs


@contextlib.contextmanager
def _quiet():
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # numpy 2 probes inside the export
            yield
    finally:
        logger.setLevel(level)


def role_model(role, parts):
    """The Keras model an ONNX graph is converted from."""
    if role == "encoder":
        return parts.encoder
    if role == "decoder":
        return parts.decoder
    image = keras.Input(shape=parts.image_shape, name="image")
    code = parts.encoder(image, training=False)
    # A VAE decodes the mean: deterministic, no sampler in the graph.
    recon = parts.decoder(code[0] if parts.variational else code, training=False)
    if parts.open_size:
        recon = _CropTo(name="crop")(recon, image)
    return keras.Model(image, recon, name="autoencoder")


class _CropTo(keras.layers.Layer):
    """The decoded grid cut to the input's height and width (a model of any size).
    Export-only: it runs in the TensorFlow graph the ONNX file is converted from."""

    def call(self, images, reference):
        return crop_to(images, reference)

    def compute_output_shape(self, images_shape, reference_shape):
        return tuple(images_shape[:1]) + tuple(reference_shape[1:3]) + tuple(images_shape[3:])


def write_onnx(path, role, parts, meta, opset):
    """Converts, checks and finishes one ONNX graph, written to `path`."""
    signature = ROLE_SIGNATURE[role]
    with tempfile.TemporaryDirectory(prefix="kerasae-onnx-") as tmp:
        raw = os.path.join(tmp, "graph.onnx")
        try:
            with _quiet():
                role_model(role, parts).export(raw, format="onnx", verbose=False,
                                               input_signature=specs(parts, signature),
                                               opset_version=opset)
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise ExportError(
                f"Converting the {role} to ONNX failed ({type(e).__name__}: {e}). "
                f"Received: role={role!r}, opset={opset}"
            ) from e
        proto = onnx.load(raw)
    _check_graph(proto, role)
    _finish_graph(proto, role, list(meta["signatures"][signature]["outputs"]), meta)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # noqa: BLE001 - onnx raises several types
        raise ExportError(
            f"The exported {role} graph fails onnx.checker ({e}). Received: role={role!r}"
        ) from e
    onnx.save(proto, path)


def all_nodes(graph):
    """Every node of `graph`, those of its sub-graphs included."""
    out = []
    for node in graph.node:
        out.append(node)
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                out.extend(all_nodes(attr.g))
            for g in attr.graphs:
                out.extend(all_nodes(g))
    return out


def _check_graph(proto, role):
    nodes = all_nodes(proto.graph)
    random = sorted({(n.op_type, n.name) for n in nodes if is_random_op(n.op_type)}, key=str)
    if random:
        raise random_ops_error(f"{role} graph", random)
    unsupported = sorted({(n.op_type, n.name) for n in nodes
                          if not onnx.defs.has(n.op_type, n.domain or "")}, key=str)
    if unsupported:
        raise ExportError(
            f"The {role} uses operations that ONNX cannot express: "
            f"{describe_nodes(unsupported)}. Replace the layer that produces them, or "
            "export with formats=('saved_model',). "
            f"Received: op_types={sorted({t for t, _ in unsupported})}"
        )


def _rename_outputs(graph, names, role):
    if len(graph.output) != len(names):
        raise ExportError(
            f"The {role} graph has {len(graph.output)} outputs; expected {names}. "
            f"Received: role={role!r}"
        )
    renames = {o.name: new for o, new in zip(graph.output, names)}
    for node in graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
        node.input[:] = [renames.get(n, n) for n in node.input]
    for value in list(graph.output) + list(graph.value_info):
        value.name = renames.get(value.name, value.name)


def _finish_graph(proto, role, output_order, meta):
    """Names and orders the outputs, names the batch axis `batch`, stores the metadata."""
    graph = proto.graph
    _rename_outputs(graph, output_order, role)
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
        if len(dims) == 4 and not (dims[1].dim_value or dims[2].dim_value):
            # a model of any size: the image's height and width, the code's grid, and the
            # decoder's padded grid get names, not the converter's numbered ones
            prefix = {"image": "", "reconstruction": "" if role == "autoencoder" else
                      "decoded_"}.get(value.name, "code_")
            for dim, axis in zip(dims[1:3], ("height", "width")):
                dim.Clear()
                dim.dim_param = prefix + axis
    graph.name = f"kerasae_{role}"
    graph.doc_string = "converted by tf2onnx"  # not the traced function's numbered name
    proto.doc_string = (f"kerasae {role} of {meta['model']['name']!r} "
                        f"({meta['model']['builder']}); see metadata_props['kerasae'].")
    del proto.metadata_props[:]
    entries = {"kerasae": json.dumps(dict(meta, role=role)), "role": role,
               "signature": ROLE_SIGNATURE[role]}
    for key in meta:
        if key not in RESERVED:  # user metadata, e.g. "anomaly", for quick access
            entries[key] = json.dumps(meta[key])
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
