"""compress: images -> a `.kae` file -> images, against JPEG at the same PSNR.

The file format is `kerasae.uses.kae`.
"""

import lzma
import os
import time
import zlib

import numpy as np

from kerasae import plots as _plots
from kerasae.metrics import image_quality, mean_mse, mean_ssim, mse_per_image, psnr
from kerasae.models import predict
from kerasae.models.resolve import resolve_model
from kerasae.uses.codec.container import output_names
from kerasae.uses.codec.kae import (
    SUFFIX,
    atomic_write,
    check_bits,
    decode_bytes,
    decode_file,
    dequantize,
    encode_codes,
    fit_quantization,
)
from kerasae.uses._compress_sizes import (alpha_metrics, check_tile, compress_sizes,
                                           is_open_size, note_dropped_alpha, own_size_images)
from kerasae.uses._jpeg import jpeg_at_psnr, jpeg_round_trip
from kerasae.uses.inputs import check_applies, load_inputs, model_for_images
from kerasae.uses.result import Output, Result, save_png, skip

JPEG_QUALITIES = (1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)


# ------------------------------------------------------------------------ use
def compress(model, images=None, labels=None, *, dataset="fashion_mnist", split="auto",
             limit=None, resize="crop", skip_bad=False, max_pixels=None,
             bits=8, out=None, jpeg=True, sweep=True, sweep_count=1000,
             name="images", tile=None):
    """Compresses images to a `.kae` file, decodes it back, and compares with JPEG.

    Reported from the real file: bits per image (file size x 8 / images), of
    which header and payload; PSNR / MSE / SSIM of the decoded images; the same
    for the float (unquantized) codes; generic compressors (zlib, lzma) on the
    same quantized symbols; and JPEG (Pillow, optimized tables) at the quality
    whose mean PSNR is nearest the autoencoder's, with whole-file and
    scan-only sizes (a 28x28 JPEG is mostly header). PSNR is that of the mean
    MSE over the images, as in `kerasae.metrics`. With `sweep`, a
    rate-distortion curve over `bits` 2..8 and JPEG qualities on the first
    `sweep_count` images.

    Args:
        model: an `Autoencoder`, a `.keras` path or a zoo preset name.
        images, labels, dataset, split, limit, resize, skip_bad, max_pixels:
            what to compress (see `features`).
        bits: quantization bits per code dimension. Defaults to `8`.
        out: directory for `<name>.kae`, `compress.json`, `compress.png`,
            `compress_rd.png`. Defaults to `None` (encode in memory).
        jpeg: compare with JPEG. Defaults to `True`.
        sweep: compute the rate-distortion sweep. Defaults to `True`.
        sweep_count: images in the sweep. Defaults to `1000`.
        name: stem of the `.kae` file. Defaults to `"images"`.
        tile: with a model of any size that has a tiled mode (`tiny_ae`), encode
            and decode each image in overlapping tiles of this many pixels, so
            memory follows the tile, not the photo. Defaults to `None` (whole).

    A model of any size (`None` height and width, e.g. `tae_flux2`) codes each image
    at its own size into a version-3 `.kae` file and reports bits per pixel and PSNR
    per image and in total, JPEG at equal PSNR per image (`_compress_sizes`); `labels`,
    `resize` and the sweep do not apply there.

    Returns:
        A `Result` with arrays `decoded` (images decoded from the file) and
        `symbols` (lists, one entry per image, for a model of any size).
    """
    check_bits(bits)
    ref = resolve_model(model)
    check_applies("compress", ref.model)
    check_tile(ref, tile)
    if is_open_size(ref.model) or ref.fixed_from_any_size:
        return compress_sizes(ref, *own_size_images(
            ref, images, dataset=dataset, split=split, limit=limit, resize=resize,
            skip_bad=skip_bad, max_pixels=max_pixels), bits=bits, out=out, jpeg=jpeg,
            sweep=sweep, name=name, tile=tile)
    inputs = load_inputs(images, labels, dataset=dataset, split=split, limit=limit,
                         shape=ref.model.image_shape, resize=resize,
                         skip_bad=skip_bad, max_pixels=max_pixels)
    x = inputs.images
    model_for_images(ref, x)
    note_dropped_alpha(inputs, images, dataset, split, x.shape[-1] if x.ndim == 4 else 0)
    jpeg_blocker = _jpeg_blocker(x) if jpeg else None
    jpeg = jpeg and jpeg_blocker is None
    with Output(out) as output:
        start = time.perf_counter()
        codes = predict.encode(ref.model, x)
        # Image files keep their names in the .kae file (decoded back to them); a
        # dataset's codes are stored alone, so bits/image stay the codes' own.
        names = inputs.names if "files" in inputs.description else None
        data, symbols, header = encode_codes(ref, codes, bits, names)
        encode_seconds = time.perf_counter() - start
        if output.enabled:
            kae_path = output.path(name + SUFFIX)
            atomic_write(kae_path, data)
            file_bytes = os.path.getsize(kae_path)
            start = time.perf_counter()
            decoded, _ = decode_file(kae_path, ref)
        else:
            file_bytes = len(data)
            start = time.perf_counter()
            decoded, _ = decode_bytes(data, ref)
        decode_seconds = time.perf_counter() - start
        n = len(x)
        header_bytes = file_bytes - header["payload_bytes"]
        float_recon = predict.decode(ref.model, codes)
        raw_symbols = _symbol_bytes(symbols, bits)
        metrics = {
            "use": "compress", "model": ref.info(), "inputs": inputs.description,
            "count": n, "bits": bits, "code_dims": int(symbols.shape[1]),
            "file": name + SUFFIX, "file_bytes": file_bytes,
            "header_bytes": header_bytes, "payload_bytes": header["payload_bytes"],
            "bits_per_image": file_bytes * 8 / n,
            "payload_bits_per_image": header["payload_bytes"] * 8 / n,
            "payload_bits_per_dim": header["payload_bytes"] * 8 / symbols.size,
            "raw_pixel_bits_per_image": int(x[0].size * 8),
            **image_quality(x, decoded),
            "float_codes": image_quality(x, float_recon),
            "generic_compressors_on_symbols": {
                "zlib_bits_per_image": len(zlib.compress(raw_symbols, 9)) * 8 / n,
                "lzma_bits_per_image": len(lzma.compress(raw_symbols, preset=9)) * 8 / n,
                "unpacked_bits_per_image": bits * symbols.shape[1],
            },
            "seconds": {"encode": round(encode_seconds, 2), "decode": round(decode_seconds, 2)},
            "psnr": "10*log10(1/MSE) of the mean MSE over the images, pixels in [0, 1]",
            **alpha_metrics(inputs.description),
        }
        jpeg_best = _jpeg_comparison(x, metrics, jpeg, jpeg_blocker)
        if sweep:
            metrics["rate_distortion"] = _sweep(ref, x[:sweep_count], codes[:sweep_count],
                                                jpeg)
        if x.ndim != 4:
            skip(metrics, "compress.png", "the data are flat vectors, not images")
        if output.enabled:
            if x.ndim == 4:
                _plot_examples(output.path("compress.png"), x, decoded, jpeg_best, metrics, ref)
            if sweep:
                _plot_rd(output.path("compress_rd.png"), metrics, ref)
            output.json("compress.json", metrics)
        files = output.commit()
    return Result("compress", metrics, {"decoded": decoded, "symbols": symbols},
                          files)


def _jpeg_blocker(x):
    """Why JPEG cannot code `x`, or `None`."""
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        return None
    return ("JPEG takes images of 1 or 3 channels; these are "
            + ("flat vectors" if x.ndim != 4 else f"{x.shape[-1]}-channel images"))


def _jpeg_comparison(x, metrics, jpeg, blocker):
    """JPEG at (about) the autoencoder's PSNR, into `metrics`; the best JPEG run or `None`."""
    jpeg_best = None
    if blocker:
        skip(metrics, "JPEG comparison", blocker)
    elif not jpeg:
        skip(metrics, "JPEG comparison", "not asked for (--no-jpeg)")
    if jpeg:
        jpeg_best, _ = jpeg_at_psnr(x, metrics["psnr_db"])
        metrics["jpeg_at_equal_psnr"] = {
            k: v for k, v in jpeg_best.items() if k != "decoded"}
        if jpeg_best["quality"] == 1 and jpeg_best["psnr_db"] > metrics["psnr_db"]:
            metrics["jpeg_at_equal_psnr"]["note"] = (
                "JPEG's lowest quality (q=1) is already sharper than the autoencoder's "
                "PSNR: compared at q=1, not at equal PSNR")
        elif jpeg_best["quality"] == 100 and jpeg_best["psnr_db"] < metrics["psnr_db"]:
            metrics["jpeg_at_equal_psnr"]["note"] = (
                "JPEG's highest quality (q=100) stays below the autoencoder's PSNR: "
                "compared at q=100, not at equal PSNR")
        metrics["jpeg_at_equal_psnr"]["ssim"] = mean_ssim(x, jpeg_best["decoded"])
        metrics["jpeg_bits_over_ae_bits"] = (jpeg_best["bits_per_image"]
                                             / metrics["bits_per_image"])
        metrics["jpeg_scan_bits_over_ae_bits"] = (jpeg_best["scan_bits_per_image"]
                                                  / metrics["bits_per_image"])
    return jpeg_best


def _symbol_bytes(symbols, bits):
    dtype = "uint8" if bits <= 8 else "<u2"
    return np.ascontiguousarray(symbols.astype(dtype)).tobytes()


def _sweep(ref, x, codes, jpeg):
    rows = []
    for b in range(2, 9):
        data, symbols, header = encode_codes(ref, codes, b)
        offset, scale = fit_quantization(codes, b)
        z = dequantize(symbols, offset, scale, ref.model.code_shape)
        recon = predict.decode(ref.model, z)
        rows.append({"bits": b, "bits_per_image": len(data) * 8 / len(x),
                     "payload_bits_per_image": header["payload_bytes"] * 8 / len(x),
                     "psnr_db": psnr(mean_mse(x, recon))})
    result = {"count": int(len(x)), "autoencoder": rows}
    if jpeg:
        jrows = []
        for q in JPEG_QUALITIES:
            dec, sizes, scans = jpeg_round_trip(x, q)
            jrows.append({"quality": q, "bits_per_image": float(sizes.mean() * 8),
                          "scan_bits_per_image": float(scans.mean() * 8),
                          "psnr_db": psnr(mean_mse(x, dec))})
        result["jpeg"] = jrows
    return result


def _plot_examples(path, x, decoded, jpeg_best, metrics, ref):
    k = min(10, len(x))
    rows = [x[:k], decoded[:k]]
    labels = ["original", f"autoencoder\n{metrics['bits_per_image']:.0f} bits/img"]
    cells = [None, [f"{psnr(m):.1f} dB" for m in mse_per_image(x[:k], decoded[:k])]]
    if jpeg_best is not None:
        rows.append(jpeg_best["decoded"][:k])
        labels.append(f"JPEG q={jpeg_best['quality']}\n{jpeg_best['bits_per_image']:.0f} bits/img")
        cells.append([f"{psnr(m):.1f} dB" for m in mse_per_image(x[:k], jpeg_best["decoded"][:k])])
    title = (f"Compression with {ref.name} ({metrics['bits']}-bit codes, range coded): "
             f"{metrics['psnr_db']:.2f} dB at {metrics['bits_per_image']:.0f} bits/image")
    if jpeg_best is not None:
        at = ("JPEG at equal PSNR" if "note" not in metrics["jpeg_at_equal_psnr"]
              else f"JPEG at its nearest quality, q={jpeg_best['quality']}")
        title += (f"\n{at}: {jpeg_best['psnr_db']:.2f} dB at "
                  f"{jpeg_best['bits_per_image']:.0f} bits/image "
                  f"({jpeg_best['scan_bits_per_image']:.0f} without headers); "
                  f"image titles: PSNR of that image")
    return _plots.image_rows(path, rows, title=title, row_labels=labels, cell_labels=cells)


def _plot_rd(path, metrics, ref):
    rd = metrics["rate_distortion"]
    ae = rd["autoencoder"]
    series = [([r["bits_per_image"] for r in ae], [r["psnr_db"] for r in ae],
               f"autoencoder {ref.name}, 2..8-bit codes (.kae file)")]
    notes = [(r["bits_per_image"], r["psnr_db"], f"{r['bits']} bits") for r in ae
             if r["bits"] % 2 == 0]
    if "jpeg" in rd:
        j = rd["jpeg"]
        series.append(([r["bits_per_image"] for r in j], [r["psnr_db"] for r in j],
                       "JPEG (Pillow, optimized), whole file"))
        series.append(([r["scan_bits_per_image"] for r in j], [r["psnr_db"] for r in j],
                       "JPEG, entropy-coded scan only (no headers)"))
        notes += [(r["bits_per_image"], r["psnr_db"], f"q{r['quality']}")
                  for r in j if r["quality"] in (1, 10, 50, 90)]
    return _plots.curves(
        path, series, notes=notes, logx=True,
        xlabel="bits per image (log scale)", ylabel="PSNR of the mean MSE (dB)",
        title=f"Rate-distortion on {rd['count']} images: autoencoder codes vs JPEG",
    )


def decompress(path, model=None, *, out=None, tile=None):
    """Decodes a `.kae` file; with `out`, writes `decoded.npy`, `decompress.json` and,
    when the file carries image names, `images/<name>.png`.

    Image names keep their sub-folders (`images/a/img0.png`), made safe and unique
    (see `kerasae.uses.codec.container.output_names`): nothing is written outside
    `out/images`, and `metrics["png_files"]` counts the files written, of which
    `metrics["renamed"]` got a suffix to stay unique.

    Args:
        path: the `.kae` file.
        model: the model it was encoded with; defaults to the zoo preset its header
            names when that loads without a download (a `.keras` file is not stored
            in the file by its path: pass it).
        out: output directory. Defaults to `None`.
        tile: decode a version-3 file's images in tiles of this many pixels
            (see `compress`). Defaults to `None`.

    A version-3 file (images of several sizes) decodes to a list of images, each at
    its own size, written as PNGs only (`images/image<i>.png` when it holds no names).

    Returns:
        A `Result` with array `decoded` and the header in `metrics["header"]`.
    """
    images, header = decode_file(path, model, tile)
    sized = isinstance(images, list)  # version 3: each image at its own size
    with Output(out) as output:
        metrics = {"use": "decompress", "file": os.path.abspath(os.fspath(path)),
                   "file_bytes": os.path.getsize(path), "count": int(header["count"]),
                   "header": {k: v for k, v in header.items() if k != "quantization"},
                   "bits": header["quantization"]["bits"],
                   "bits_per_image": os.path.getsize(path) * 8 / max(int(header["count"]), 1)}
        if sized:
            metrics["image_shapes"] = header["image_shapes"]
        if output.enabled:
            if not sized:  # images of several sizes make no one array: their PNGs only
                output.npy("decoded.npy", images)
            if header.get("names") or sized:
                paths, renamed, changed = output_names(header.get("names")
                                                       or [""] * len(images))
                for rel, img in zip(paths, images):
                    save_png(output.path(f"images/{rel}"), img)
                # Counted on disk: the files there are, not the names asked for.
                written = sum(len(f) for _, _, f in os.walk(os.path.join(output.stage, "images")))
                metrics.update(png_files=written, renamed=renamed, names_made_safe=changed)
            output.json("decompress.json", metrics)
        files = output.commit()
    return Result("decompress", metrics, {"decoded": images}, files)
