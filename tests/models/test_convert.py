"""TAESD-family checkpoints in `TinyAE` (`kerasae.models.convert`): TAEF2 against a PyTorch
reference written here from the published architecture, on real photos at a size that is a
multiple of 8 and one that is not; other layouts made by torch; tensors missing, left over or
mis-shaped refused by name with nothing set."""

import os

import numpy as np
import pytest

import kerasae
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.models.convert import load_taesd_weights, tiny_ae_from_pth
from kerasae.presets.torch_state import read_state_dict
from tests.helpers import SHARED_DATA

TAEF2_DIR = os.environ.get("KERASAE_TAEF2_DATA", os.path.join(SHARED_DATA, "taef2"))
ENCODER, DECODER = (os.path.join(TAEF2_DIR, f"taef2_{p}.pth") for p in ("encoder", "decoder"))
needs_taef2 = pytest.mark.skipif(
    not os.path.isfile(DECODER),
    reason=f"needs TAEF2's taef2_encoder.pth and taef2_decoder.pth under {TAEF2_DIR} (set "
           "KERASAE_TAEF2_DATA to their folder)")


def torch_reference(latent_channels=32, width=64, blocks=(1, 3, 3, 3), norm=True, channels=3):
    """TAESD's encoder and decoder as `nn.Sequential`s, written from the architecture: 3x3
    convolutions padded by 1; blocks of three convolutions added to the input, then ReLU,
    with (lowest resolution, `norm`) a 1x1 -> GroupNorm(4) -> ReLU -> 1x1 branch added to the
    input first; stride-2 convolutions without bias down, nearest 2x upsampling and a
    convolution without bias up; the decoder first soft-clamps its input to 3 tanh(x / 3)."""
    torch = pytest.importorskip("torch", reason="torch runs the reference model")
    nn = torch.nn

    def conv(n_in, n_out, stride=1, bias=True):
        return nn.Conv2d(n_in, n_out, 3, stride, 1, bias=bias)

    class Block(nn.Module):
        def __init__(self, global_branch):
            super().__init__()
            self.conv = nn.Sequential(conv(width, width), nn.ReLU(), conv(width, width),
                                      nn.ReLU(), conv(width, width))
            self.pool = nn.Sequential(
                nn.Conv2d(width, 4 * width, 1, bias=False), nn.GroupNorm(4, 4 * width),
                nn.ReLU(), nn.Conv2d(4 * width, width, 1, bias=False)) if global_branch else None

        def forward(self, x):
            if self.pool is not None:
                x = x + self.pool(x)
            return torch.relu(self.conv(x) + x)

    class Clamp(nn.Module):
        def forward(self, x):
            return torch.tanh(x / 3) * 3

    stages = len(blocks) - 1
    level_blocks = lambda level: [Block(norm and level == stages)  # noqa: E731
                                  for _ in range(blocks[level])]
    enc = [conv(channels, width)] + level_blocks(0)
    for level in range(1, stages + 1):
        enc += [conv(width, width, 2, bias=False)] + level_blocks(level)
    dec = [Clamp(), conv(latent_channels, width), nn.ReLU()]
    for level in range(stages, 0, -1):
        dec += level_blocks(level) + [nn.Upsample(scale_factor=2), conv(width, width, bias=False)]
    dec += level_blocks(0) + [conv(width, channels)]
    return torch, nn.Sequential(*enc, conv(width, latent_channels)).eval(), \
        nn.Sequential(*dec).eval()


def run_reference(torch, encoder, decoder, x, multiple=8):
    """Codes and reconstructions of NHWC images `x`: edge-padded at the bottom and right to
    a multiple of `multiple` (kerasae's choice), decoded and cropped back."""
    h, w = x.shape[1:3]
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    t = torch.nn.functional.pad(t, (0, -w % multiple, 0, -h % multiple), mode="replicate")
    with torch.no_grad():
        z = encoder(t)
        y = decoder(z)[:, :, :h, :w]
    return z.permute(0, 2, 3, 1).numpy(), y.permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def taef2():
    """TAEF2 in Keras (raw output, and clipped to [0, 1]) and in the PyTorch reference."""
    torch, encoder, decoder = torch_reference()
    encoder.load_state_dict(torch.load(ENCODER, weights_only=True))  # strict: every name fits
    decoder.load_state_dict(torch.load(DECODER, weights_only=True))
    raw = tiny_ae_from_pth(ENCODER, DECODER, clip_output=False)
    clipped = kerasae.TinyAE(input_shape=(None, None, 3))
    clipped.set_weights(raw.get_weights())
    return raw, clipped, (torch, encoder.float(), decoder.float())


@needs_taef2
@pytest.mark.parametrize("size", [(64, 96), (60, 84)], ids=str)
def test_taef2_matches_pytorch_on_photos(taef2, size):
    skimage_data = pytest.importorskip("skimage.data", reason="the photos are scikit-image's")
    raw, clipped, reference = taef2
    h, w = size
    x = np.stack([skimage_data.astronaut()[120:120 + h, 200:200 + w],
                  skimage_data.chelsea()[60:60 + h, 150:150 + w]]).astype("float32") / 255
    z_ref, y_ref = run_reference(*reference, x)
    z = np.asarray(raw.encode(x))
    assert z.shape == (2, -(-h // 8), -(-w // 8), 32)
    np.testing.assert_allclose(z, z_ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(raw(x)), y_ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(clipped(x)), np.clip(y_ref, 0, 1), atol=1e-4, rtol=0)
    assert 25 < 10 * np.log10(1 / np.mean((np.clip(y_ref, 0, 1) - x) ** 2)) < 45


@needs_taef2
def test_the_layout_is_read_from_the_checkpoint(taef2):
    config = taef2[0].builder_config
    assert {k: config[k] for k in ("latent_channels", "width", "blocks", "midblock_norm",
                                   "input_shape")} == dict(
        latent_channels=32, width=64, blocks=[1, 3, 3, 3], midblock_norm=True,
        input_shape=[None, None, 3])


@pytest.mark.parametrize("layout", [
    dict(latent_channels=4, width=8, blocks=(1, 3, 3, 3), norm=False),
    dict(latent_channels=6, width=8, blocks=(2, 1, 2), norm=True, channels=1),
], ids=["taesd", "two-stages-gray"])
def test_other_layouts_torch_writes_load_and_match(layout, tmp_path):
    torch, encoder, decoder = torch_reference(**layout)
    torch.manual_seed(0)
    for module in (encoder, decoder):
        for p in module.parameters():
            p.data.normal_(0, 0.15)  # not the init: every tensor must land where it belongs
        torch.save(module.state_dict(), tmp_path / f"{id(module)}.pth")
    model = tiny_ae_from_pth(tmp_path / f"{id(encoder)}.pth", tmp_path / f"{id(decoder)}.pth",
                             clip_output=False)
    assert tuple(model.builder_config["blocks"]) == layout["blocks"]
    x = np.random.default_rng(0).uniform(0, 1, (2, 22, 30, layout.get("channels", 3)))
    z_ref, y_ref = run_reference(torch, encoder, decoder, x.astype("float32"),
                                 2 ** (len(layout["blocks"]) - 1))
    np.testing.assert_allclose(np.asarray(model.encode(x.astype("float32"))), z_ref, atol=1e-4)
    np.testing.assert_allclose(np.asarray(model(x.astype("float32"))), y_ref, atol=1e-4)


@pytest.fixture(scope="module")
def states():
    return read_state_dict(ENCODER), read_state_dict(DECODER)


@needs_taef2
@pytest.mark.parametrize("change, phrase", [
    (lambda e, d: e.pop("12.pool.1.weight"), r"encoder checkpoint .* lacks 1 .*12\.pool\.1\.weight"),
    (lambda e, d: d.update({"5.skip.weight": np.zeros((64, 64, 1, 1), "float16")}),
     r"decoder checkpoint .* holds 1 the model has no place for \(5\.skip\.weight\)"),
    (lambda e, d: e.update({"14.weight": np.zeros((16, 64, 3, 3), "float16")}),
     r"encoder checkpoint's 14\.weight has shape \(16, 64, 3, 3\)"),
    (lambda e, d: d.update({"3.pool.1.bias": np.zeros(64, "float16")}),
     r"decoder checkpoint's 3\.pool\.1\.bias has shape \(64,\)"),
], ids=["missing", "extra", "kernel-shape", "norm-shape"])
def test_tensors_that_do_not_fit_are_refused_by_name_and_nothing_is_set(states, change, phrase):
    encoder_state, decoder_state = dict(states[0]), dict(states[1])
    change(encoder_state, decoder_state)
    model = kerasae.TinyAE(input_shape=(16, 16, 3))
    before = model.get_weights()
    with pytest.raises(InvalidValue, match=phrase):
        load_taesd_weights(model, encoder_state, decoder_state)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@needs_taef2
def test_another_layout_or_model_is_refused(states):
    with pytest.raises(InvalidValue, match=r"holds 12 the model has no place for "
                                           r"\(11\.pool\.0\.weight, 11\.pool\.1\.bias"):
        load_taesd_weights(kerasae.TinyAE(midblock_norm=False), *states)
    with pytest.raises(InvalidValue, match="is it the decoder"):
        tiny_ae_from_pth(DECODER, ENCODER)
    with pytest.raises(InvalidType, match="built by TinyAE"):
        load_taesd_weights(kerasae.ConvAE(latent_dim=4, input_shape=(8, 8, 1)), *states)


@needs_taef2
@pytest.mark.slow
def test_taef2_exports_take_any_size_and_match_keras_and_pytorch(taef2, tmp_path):
    """ONNX and LiteRT of TAEF2 (dynamic batch, height and width) on photos at two sizes,
    one not a multiple of 8: within 1e-4 of Keras (the export's own parity check) and,
    checked here, of the PyTorch reference."""
    import onnxruntime as ort

    from kerasae.export.bundle import export
    from kerasae.export.litert import signature_runner

    skimage_data = pytest.importorskip("skimage.data", reason="the photos are scikit-image's")
    _, clipped, reference = taef2
    xs = [np.stack([skimage_data.coffee()[:h, :w], skimage_data.rocket()[:h, :w]]
                   ).astype("float32") / 255 for h, w in ((64, 96), (60, 84))]
    manifest = export(clipped, tmp_path / "taef2", formats=("onnx", "litert"),
                      reference_inputs=xs, batch_sizes=(1, 2), tolerance=1e-4)
    assert manifest["parity"]["sizes"] == [[64, 96], [60, 84]]
    assert manifest["parity"]["max"] <= 1e-4
    enc = ort.InferenceSession(str(tmp_path / "taef2" / "encoder.onnx"))
    dec = ort.InferenceSession(str(tmp_path / "taef2" / "decoder.onnx"))
    lite_enc = signature_runner(str(tmp_path / "taef2" / "encoder.tflite"), "encode")
    lite_dec = signature_runner(str(tmp_path / "taef2" / "decoder.tflite"), "decode")
    for x in xs:
        h, w = x.shape[1:3]
        z_ref, y_ref = run_reference(*reference, x)
        y_ref = np.clip(y_ref, 0, 1)
        z_keras, y_keras = np.asarray(clipped.encode(x)), np.asarray(clipped.reconstruct(x))
        for z, decode in ((enc.run(None, {"image": x})[0],
                           lambda z: dec.run(None, {"code": z})[0]),
                          (lite_enc(image=x)["code"],
                           lambda z: lite_dec(code=z)["reconstruction"])):
            y = decode(z)[:, :h, :w]
            assert np.abs(z - z_keras).max() <= 1e-4 and np.abs(y - y_keras).max() <= 1e-4
            assert np.abs(z - z_ref).max() <= 1e-4 and np.abs(y - y_ref).max() <= 1e-4
