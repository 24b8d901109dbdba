"""LiteRT (.tflite) exports: every builder, built-in ops only, parity, and int8.

The files are run here in `ai_edge_litert`'s interpreter directly (not through
kerasae's runners) and compared with the original model's own sub-models.
"""

import json
import os

import numpy as np
import pytest

import kerasae
from kerasae.export import export
from tests.export.conftest import EXPORTING, assert_close, inputs, keras_outputs
from tests.helpers import build_tiny, needs_fashion_mnist, per_kind, photo_crops

Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter
ATOL = 1e-5


def _runner(path, signature):
    return Interpreter(model_path=path).get_signature_runner(signature)


def _ops(path):
    return {d["op_name"] for d in Interpreter(model_path=path)._get_ops_details()}


@pytest.mark.parametrize("name", per_kind(EXPORTING["litert"]))
def test_every_builder_exports_to_litert_and_matches_keras(exports, name):
    model, path, manifest = exports[name]
    enc = _runner(os.path.join(path, "encoder.tflite"), "encode")
    dec = _runner(os.path.join(path, "decoder.tflite"), "decode")
    x_all = inputs(name)
    for b in (1, 3, 7):  # one file, any batch: the interpreter resizes the input
        want_enc, code, recon, _ = keras_outputs(model, x_all[:b])
        got = enc(image=x_all[:b])
        assert set(got) == set(want_enc)
        for k in want_enc:
            assert_close(got[k], want_enc[k])
        assert_close(dec(code=code)["reconstruction"], recon)
    parity = manifest["parity"]
    assert parity["passed"] and parity["batch_sizes"] == [1, 7]
    assert set(parity["max_error"]["litert"]) >= {"encode/" + k for k in want_enc}
    assert max(parity["max_error"]["litert"].values()) <= ATOL


@pytest.mark.parametrize("name", per_kind(EXPORTING["litert"]))
def test_litert_graphs_hold_builtin_ops_only(exports, name):
    _, path, manifest = exports[name]
    for role in ("encoder", "decoder"):
        ops = _ops(os.path.join(path, f"{role}.tflite"))
        assert ops and not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
        assert sorted(ops) == manifest["litert"]["ops"][role]
        # rewritten: TRANSPOSE_CONV gives wrong outputs on resized inputs under XNNPACK
        assert "TRANSPOSE_CONV" not in ops
    model = exports[name][0]
    n = sum(type(layer).__name__ in ("Conv2DTranspose", "Conv1DTranspose")
            for layer in model.decoder.layers)
    rewritten = manifest["litert"].get("transposed_convolutions", {}).get("rewritten")
    assert (rewritten or {"encoder": 0, "decoder": 0}) == {"encoder": 0, "decoder": n}
    assert manifest["artifacts"]["litert"] == {"encoder": "encoder.tflite",
                                               "decoder": "decoder.tflite"}


@pytest.mark.parametrize("kernel,stride,padding", [
    (3, 2, "same"), (3, 2, "valid"), (4, 2, "same"), (2, 2, "valid"), (3, 1, "same"),
    (5, 3, "same"), (5, 3, "valid"), (1, 2, "valid"), (2, 3, "same")])
def test_zero_insertion_conv_is_the_transposed_conv(kernel, stride, padding):
    """The LiteRT rewrite of Conv2DTranspose computes Keras's own layer (the reference)."""
    import keras

    from kerasae.export.litert_graph import ZeroInsertionConv2D, _rewrite

    inp = keras.Input((5, 6, 3))
    model = keras.Model(inp, keras.layers.Conv2DTranspose(
        4, kernel, strides=stride, padding=padding, activation="relu")(inp))
    rng = np.random.default_rng(kernel * 10 + stride)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    copy, n = _rewrite(model)
    assert n == {"ZeroInsertionConv2D": 1}
    assert isinstance(copy.layers[-1], ZeroInsertionConv2D)
    x = rng.normal(size=(3, 5, 6, 3)).astype("float32")
    want = np.asarray(model(x))
    got = np.asarray(copy(x))
    assert got.shape == want.shape == (3,) + tuple(model.output.shape[1:])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert tuple(copy.output.shape) == tuple(model.output.shape)


@pytest.mark.parametrize("size", [(2, 2), (3, 2)])
def test_repeat_upsampling_of_any_size_reads_the_size_at_run_time(size):
    """A model of any height and width: the rewrite computes Keras's layer at every size,
    and the traced graph still knows the channels (the next convolution needs them)."""
    import keras
    import tensorflow as tf

    from kerasae.export.litert_graph import _rewrite

    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.UpSampling2D(size)(inp))
    copy, _ = _rewrite(model)
    for hw in ((5, 6), (1, 9)):
        x = np.random.default_rng(hw[0]).normal(size=(2, *hw, 3)).astype("float32")
        np.testing.assert_array_equal(np.asarray(copy(x)), np.asarray(model(x)))
    traced = tf.function(lambda t: copy(t)).get_concrete_function(
        tf.TensorSpec((None, None, None, 3), tf.float32))
    assert traced.outputs[0].shape.as_list() == [None, None, None, 3]


@pytest.mark.parametrize("size", [(2, 2), (3, 2), (1, 3)])
def test_repeat_upsampling_is_keras_upsampling_with_static_shapes(size):
    """The LiteRT rewrite of UpSampling2D computes Keras's own layer (the reference), and
    its graph keeps every axis but the batch known (Keras's `repeat` loses them)."""
    import keras
    import tensorflow as tf

    from kerasae.export.litert_graph import RepeatUpSampling2D, _rewrite

    inp = keras.Input((5, 6, 3))
    model = keras.Model(inp, keras.layers.UpSampling2D(size)(keras.layers.Reshape((5, 6, 3))(
        inp)))
    copy, n = _rewrite(model)
    assert n == {"RepeatUpSampling2D": 1} and isinstance(copy.layers[-1], RepeatUpSampling2D)
    x = np.random.default_rng(sum(size)).normal(size=(4, 5, 6, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(copy(x)), np.asarray(model(x)))
    assert tuple(copy.output.shape) == tuple(model.output.shape)
    traced = tf.function(lambda t: copy(t)).get_concrete_function(
        tf.TensorSpec((None, 5, 6, 3), tf.float32))
    assert traced.output_shapes.as_list() == [None, 5 * size[0], 6 * size[1], 3]


# (builder, decoder, channels): the upsample decoder (RepeatUpSampling2D) on colour photos
INT8_CASES = {"conv_ae-transpose-grey": ("conv_ae", "transpose", 1),
              "conv_vae-upsample-colour": ("conv_vae", "upsample", 3)}


def _train_test(channels):
    """Real images: the 8x8 digits, or 8x8 crops of photographs (colour)."""
    if channels == 1:
        return tuple(kerasae.data.load_numpy("digits", split)[0] for split in ("train", "test"))
    crops = np.stack(photo_crops(900, seed=2, size=(8, 8))).astype("float32") / 255.0
    return crops[:600], crops[600:]


def _code(model, x):
    """The model's own encoder (the independent reference): the code, a VAE's z_mean."""
    out = model.encoder.predict(x, verbose=0)
    return out[0] if model.variational else out


@pytest.fixture(scope="module", params=sorted(INT8_CASES))
def int8_export(request, tmp_path_factory):
    import keras

    builder, decoder, channels = INT8_CASES[request.param]
    x, test = _train_test(channels)
    keras.utils.set_random_seed(0)
    model = kerasae.build(builder, input_shape=(8, 8, channels), filters=(8, 16),
                          latent_dim=8, decoder=decoder, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, epochs=3, batch_size=64, verbose=0)
    path = str(tmp_path_factory.mktemp("int8") / "export")
    manifest = export(model, path, formats=("litert",), quantize="int8", representative=x,
                      quality_images=test, reference_inputs=test[:7])
    return model, path, manifest, test


@pytest.mark.slow
def test_int8_files_are_measured_against_keras_on_real_images(int8_export):
    model, path, manifest, test = int8_export
    code_name = "z_mean" if model.variational else "code"
    int8 = manifest["litert"]["int8"]
    assert int8["scheme"] == "int8" and int8["activations"] == {"encoder": "int8",
                                                                "decoder": "int16x8"}
    assert int8["calibration"]["images"] == 500 and int8["quality"]["images"] == len(test)
    enc = _runner(os.path.join(path, "encoder.int8.tflite"), "encode")
    dec = _runner(os.path.join(path, "decoder.int8.tflite"), "decode")
    recon = np.concatenate([dec(code=enc(image=test[i:i + 100])[code_name])["reconstruction"]
                            for i in range(0, len(test), 100)])
    keras_recon = np.asarray(model.decoder.predict(_code(model, test), verbose=0))
    psnr = lambda a: 10 * np.log10(1 / np.mean((a.astype("float64") - test) ** 2))  # noqa: E731
    q = int8["quality"]
    assert q["psnr_db"]["litert_int8"] == pytest.approx(psnr(recon), abs=1e-6)
    assert q["psnr_db"]["keras"] == pytest.approx(psnr(keras_recon), abs=1e-4)
    assert q["psnr_loss_db"] == pytest.approx(psnr(keras_recon) - psnr(recon), abs=1e-4)
    assert q["psnr_db"]["litert_float"] == pytest.approx(psnr(keras_recon), abs=1e-4)
    sizes = {k: sum(os.path.getsize(os.path.join(path, f"{r}{s}.tflite"))
                    for r in ("encoder", "decoder")) for k, s in (("float", ""),
                                                                   ("int8", ".int8"))}
    assert int8["bytes"] == sizes and int8["size_ratio"] == sizes["int8"] / sizes["float"]
    assert sizes["int8"] < 0.7 * sizes["float"]  # tiny model: flatbuffer overhead dominates
    # The parity tolerance follows from the measurement, per output, and the check (on
    # the given real reference images) passed under it.
    outputs = ["z_mean", "z_log_var"] if model.variational else ["code"]
    assert set(int8["tolerance"]) == {"decode/reconstruction", "reconstruct/reconstruction",
                                      *("encode/" + k for k in outputs)}
    for key, measured in int8["max_error_measured"].items():
        assert int8["tolerance"][key] == max(float(f"{1.5 * measured:.2g}"), 1e-5)
    parity = manifest["parity"]["litert_int8"]
    assert parity["passed"] and parity["tolerance"] == int8["tolerance"]
    assert parity["inputs"] == "the reference inputs"
    for key, err in parity["max_error"]["litert_int8"].items():
        assert err <= int8["tolerance"][key]
    for role in ("encoder", "decoder"):
        ops = _ops(os.path.join(path, f"{role}.int8.tflite"))
        assert "QUANTIZE" in ops and not [op for op in ops if op.startswith("Flex")]
    saved = json.load(open(os.path.join(path, "manifest.json")))
    assert saved["files"]["encoder.int8.tflite"]["bytes"] == os.path.getsize(
        os.path.join(path, "encoder.int8.tflite"))


@pytest.mark.slow
def test_int8_tolerance_holds_for_each_image_alone(int8_export):
    """The measured error is that of the worst single image: the parity check (or a user)
    running one of those images at batch 1 stays within it. (A whole batch's error is
    scaled by its largest value, which hid single images' larger errors.)"""
    model, path, manifest, test = int8_export
    int8 = manifest["litert"]["int8"]
    enc = _runner(os.path.join(path, "encoder.int8.tflite"), "encode")
    dec = _runner(os.path.join(path, "decoder.int8.tflite"), "decode")
    code_name = "z_mean" if model.variational else "code"
    codes = model.encoder.predict(test, verbose=0)
    want = dict(zip(["z_mean", "z_log_var"], codes)) if model.variational else {"code": codes}
    code = want[code_name]
    keras_recon = np.asarray(model.decoder.predict(code, verbose=0))
    errors = {}
    for i in range(len(test)):
        got = enc(image=test[i:i + 1])
        pairs = [(f"encode/{k}", got[k][0], v[i]) for k, v in want.items()]
        first = got[code_name]
        pairs += [("decode/reconstruction", dec(code=code[i:i + 1])["reconstruction"][0],
                   keras_recon[i]),
                  ("reconstruct/reconstruction", dec(code=first)["reconstruction"][0],
                   keras_recon[i])]
        for key, g, w in pairs:
            w = np.asarray(w, dtype="float64")
            e = np.max(np.abs(g - w)) / max(1.0, np.max(np.abs(w)))
            errors[key] = max(errors.get(key, 0.0), float(e))
    assert set(errors) == set(int8["max_error_measured"])
    for key, measured in int8["max_error_measured"].items():
        assert errors[key] == pytest.approx(measured, rel=1e-3, abs=1e-6), key
        assert errors[key] <= int8["tolerance"][key]


def test_float_files_of_each_decoder_hold_builtin_ops_and_match_keras(int8_export):
    model, path, manifest, test = int8_export
    code_name = "z_mean" if model.variational else "code"
    enc = _runner(os.path.join(path, "encoder.tflite"), "encode")
    dec = _runner(os.path.join(path, "decoder.tflite"), "decode")
    for b in (1, 3, 7):  # the dynamic batch axis: the interpreter resizes the input
        code = _code(model, test[:b])
        np.testing.assert_allclose(enc(image=test[:b])[code_name], code, atol=ATOL, rtol=0)
        np.testing.assert_allclose(dec(code=code)["reconstruction"],
                                   model.decoder.predict(code, verbose=0), atol=ATOL, rtol=0)
    assert manifest["parity"]["passed"]
    assert max(manifest["parity"]["max_error"]["litert"].values()) <= ATOL
    for name in ("encoder.tflite", "decoder.tflite", "encoder.int8.tflite",
                 "decoder.int8.tflite"):
        ops = _ops(os.path.join(path, name))
        assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM",
                                                                        "TRANSPOSE_CONV")]


@pytest.mark.slow
def test_int8_calibrates_on_the_runs_own_folder_at_the_models_input(tmp_path):
    """A run trained on a folder of mixed-size photos: the int8 export reads that folder
    (from run.json) at the model's input size, and checks parity on real images."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, crop in enumerate(photo_crops(140, seed=5, sizes=(9, 40))):
        Image.fromarray(crop).save(folder / f"{i:03d}.png")
    photos = kerasae.data.folder(str(folder), image_size=8, color_mode="grayscale")
    model = build_tiny("conv_vae")
    kerasae.fit(model, photos, epochs=1, batch_size=32, validation=None,
                out_dir=str(tmp_path / "run"), verbose=0)
    manifest = export(str(tmp_path / "run" / "model.keras"), tmp_path / "e",
                      formats=("litert",), quantize="int8")
    int8 = manifest["litert"]["int8"]
    assert int8["calibration"]["images"] == 140
    assert str(folder) in int8["calibration"]["source"]
    assert "in-sample" in int8["quality"]["source"]  # 140 images: none left to measure on
    parity = manifest["parity"]["litert_int8"]
    assert parity["passed"] and parity["inputs"].startswith("the quality images")


@pytest.mark.slow
def test_int8_representative_folder_with_split_folders_calibrates_on_train(tmp_path):
    """`--representative photos/` where photos/ holds train/ and test/: calibration on
    train, the int8 loss measured on test (it used to ask for a split 'all')."""
    from PIL import Image

    for split, n, seed in (("train", 40, 6), ("test", 12, 7)):
        (tmp_path / "photos" / split).mkdir(parents=True)
        for i, crop in enumerate(photo_crops(n, seed=seed, sizes=(9, 30))):
            Image.fromarray(crop).convert("L").save(tmp_path / "photos" / split / f"{i}.png")
    manifest = export(build_tiny("conv_ae"), tmp_path / "e", formats=("litert",),
                      quantize="int8", representative=str(tmp_path / "photos"))
    int8 = manifest["litert"]["int8"]
    assert int8["calibration"]["images"] == 40 and "(train)" in int8["calibration"]["source"]
    assert int8["quality"]["images"] == 12 and "(test)" in int8["quality"]["source"]
    assert manifest["parity"]["litert_int8"]["passed"]


@pytest.mark.slow
def test_int8_tolerance_given_replaces_the_measured_one(tmp_path):
    """int8_tolerance= (--int8-tolerance): every output's tolerance, stated as given; one
    below what int8 reaches fails the export and writes nothing."""
    from kerasae.export.formats import ParityError

    x_train, x_test = _train_test(1)
    model = build_tiny("conv_vae")
    kwargs = dict(formats=("litert",), quantize="int8", representative=x_train,
                  quality_images=x_test[:100])
    manifest = export(model, tmp_path / "loose", int8_tolerance=0.5, **kwargs)
    int8 = manifest["litert"]["int8"]
    assert set(int8["tolerance"].values()) == {0.5}
    assert int8["tolerance_rule"].startswith("given: 0.5 for every output")
    assert manifest["parity"]["litert_int8"]["passed"]
    with pytest.raises(ParityError, match="litert_int8"):
        export(model, tmp_path / "tight", int8_tolerance=1e-9, **kwargs)
    assert not (tmp_path / "tight").exists()
    with pytest.raises(ValueError, match="int8_tolerance= are for an int8 export"):
        export(model, tmp_path / "float", int8_tolerance=0.1)


def test_int8_needs_litert_and_real_images(tmp_path):
    model = build_tiny("conv_ae")
    with pytest.raises(ValueError, match="add 'litert' to the formats"):
        export(model, tmp_path / "a", quantize="int8")
    with pytest.raises(ValueError, match="calibrates on real images of the training data"):
        export(model, tmp_path / "b", formats=("litert",), quantize="int8")
    with pytest.raises(ValueError, match="Unknown quantization 'int4'"):
        export(model, tmp_path / "c", formats=("litert",), quantize="int4")
    assert not os.listdir(tmp_path)


@pytest.mark.slow
@needs_fashion_mnist
@pytest.mark.parametrize("preset", ["conv_ae_fashion_mnist", "conv_vae_fashion_mnist"])
def test_int8_presets_meet_the_size_and_quality_targets(preset, tmp_path):
    manifest = export(preset, tmp_path / "e", formats=("litert",), quantize="int8")
    int8 = manifest["litert"]["int8"]
    assert int8["size_ratio"] <= 0.30, int8["bytes"]
    assert int8["quality"]["psnr_loss_db"] <= 0.5, int8["quality"]
    assert int8["quality"]["source"] == "the first 1000 images of fashion_mnist (test)"
    # float LiteRT reproduces Keras over every batch of the measurement (repeated calls at
    # one batch size through kerasae's runners included)
    psnr = int8["quality"]["psnr_db"]
    assert psnr["litert_float"] == pytest.approx(psnr["keras"], abs=1e-4)
