"""compress with a model of any size: photos of several sizes, each coded at its own size.

`compress` hands a model whose height and width are open (`tae_flux2`, a `tiny_ae`
built with `input_shape=(None, None, 3)`) to `compress_sizes`: each image is read at
its own size, encoded alone (in tiles with `tile`), and the codes go into one
version-3 `.kae` file (`kerasae.uses.codec.sized`) that keeps each image's size,
code shape and name. Reported per image and in total: bits per pixel (an image's
own range-coded segment over its height x width; the total counts the whole file,
header included) and PSNR (from the float MSE), beside JPEG at the quality whose PSNR
is nearest, image by image, as `kerasae.benchmarks.photos --codec` measures.
"""

import inspect
import os
import time

import numpy as np

from kerasae import plots as _plots
from kerasae._util.errors import InvalidValue
from kerasae.data.folders import bad_files_error, expand_files, scan
from kerasae.data.image_options import pixel_budget
from kerasae.data.images import BadImageFile, read
from kerasae.metrics import psnr
from kerasae.models import predict
from kerasae.uses._jpeg import jpeg_round_trip, rate_row, rate_summary
from kerasae.uses.codec.kae import SUFFIX, atomic_write, decode_bytes, decode_file
from kerasae.uses.codec.sized import encode_sized, is_open_size
from kerasae.uses.inputs import _is_pathlike_input, default_split, load_inputs
from kerasae.uses.result import Output, Result, skip

__all__ = ["alpha_metrics", "check_tile", "compress_sizes", "is_open_size", "note_dropped_alpha",
           "own_size_images", "summary_lines"]


def _files(images, dataset, split):
    """`([(path, name)], where)` of image files or a folder dataset; `None` for others."""
    if images is not None:
        return (expand_files(images), "the images given") if _is_pathlike_input(images) \
            else None
    root = os.path.expanduser(os.fspath(dataset))
    if not os.path.isdir(root):
        return None
    files, _, _ = scan(root, default_split(root) if split in (None, "auto") else split)
    return [(f, os.path.relpath(f, root)) for f in files], root


def own_size_images(ref, images=None, *, dataset="fashion_mnist", split="auto", limit=None,
                    resize="crop", skip_bad=False, max_pixels=None):
    """What to compress at each image's own size: `(uint8 or float images, names, description)`.

    Image files and folders are read one by one at their own size, converted to the
    model's channels; a list of arrays is taken as it is; anything else (an array,
    a dataset) is read by `load_inputs`, one size for all. A model of any size fixed
    to one size (`--image-size`, `ModelRef.at_size`) reads every image at that size
    by `resize`, and the model of any size codes them.
    """
    model = ref.model
    if ref.fixed_from_any_size:
        inputs = load_inputs(images, dataset=dataset, split=split, limit=limit,
                             shape=model.image_shape, resize=resize, skip_bad=skip_bad,
                             max_pixels=max_pixels)
        note_dropped_alpha(inputs, images, dataset, split, model.image_shape[-1])
        return list(inputs.images), inputs.names, inputs.description
    channels = int(model.image_shape[-1])
    found = _files(images, dataset, split)
    if found is None:
        if isinstance(images, (list, tuple)) and all(np.ndim(x) == 3 for x in images):
            out = [np.asarray(x) for x in images][:limit]
            return out, None, {"arrays": len(out),
                               "sized": "each at its own size (the model takes any size)"}
        inputs = load_inputs(images, dataset=dataset, split=split, limit=limit,
                             shape=model.image_shape)
        return list(inputs.images), inputs.names, inputs.description
    pairs, where = found
    pairs = pairs[:limit] if limit else pairs
    budget, out, names, bad, see_through = pixel_budget(max_pixels), [], [], [], []
    for path, name in pairs:
        try:
            x = read(path, 4 if channels == 3 else channels, None, "crop", budget)
        except BadImageFile as e:
            bad.append(e)
            continue
        if x.shape[-1] == 4:  # opaque alpha for files without transparency
            if x[..., 3].min(initial=255) < 255:
                see_through.append(name)
            x = np.ascontiguousarray(x[..., :3])
        out.append(x)
        names.append(name)
    if bad and (not skip_bad or not out):
        raise bad_files_error(bad, where, len(pairs))
    description = {"files": len(out), "from": where if os.path.isdir(where) else None,
                   "sized": f"{'rgb' if channels == 3 else 'grayscale'} at their own sizes "
                            "(the model takes any size)"}
    if bad:
        description["skipped_bad_files"] = len(bad)
    if channels == 3:
        description["alpha_dropped"] = {"images": len(see_through), "names": see_through}
    return out, names, description


def note_dropped_alpha(inputs, images, dataset, split, channels):
    """Records in `inputs.description["alpha_dropped"]` which image files read as RGB
    (`channels` 3) had transparency: the codec drops their alpha."""
    found = _files(images, dataset, split) if channels == 3 else None
    if found and inputs.names:
        kept = set(inputs.names)
        see = [name for path, name in found[0] if name in kept and _see_through(path)]
        inputs.description["alpha_dropped"] = {"images": len(see), "names": see}


def alpha_metrics(description):
    """`{"alpha_dropped": ...}` for `compress`' metrics when the inputs had RGB files,
    moved out of the inputs' `description` (the metrics name it once)."""
    dropped = description.pop("alpha_dropped", None) if isinstance(description, dict) else None
    if dropped is None:
        return {}
    return {"alpha_dropped": dict(dropped, note="images with transparency are coded as RGB: "
                                  "their alpha is dropped, decoded opaque")}


def _see_through(path):
    """Whether an image file has pixels that are not opaque (its header first: most files
    have no alpha channel and are not decoded here)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("RGBA", "LA", "PA") and "transparency" not in im.info:
                return False
            return im.convert("RGBA").getchannel("A").getextrema()[0] < 255
    except (OSError, ValueError):
        return False  # the reader has named or skipped it


def check_tile(ref, tile):
    """Raises unless `tile` is `None` or `ref`'s model is of any size with a tiled mode."""
    if tile is None:
        return
    model = ref.of_any_size().model  # fixed to a size by --image-size or not
    if not is_open_size(model) or "tile" not in inspect.signature(model.encode).parameters:
        raise InvalidValue(f"tile applies to a model of any size with a tiled mode (tiny_ae); "
                           f"{ref.name} takes {tuple(model.image_shape)}. "
                           f"Received: tile={tile!r}")


def _float(x):
    x = np.asarray(x)
    return (x.astype("float32") / 255.0) if x.dtype == np.uint8 else x.astype("float32")


def _encode_one(model, x, tile):
    if tile is None:
        return predict.encode(model, x[None], batch_size=1)[0]
    return np.asarray(model.encode(x[None], tile=tile))[0]


def compress_sizes(ref, images, names, description, *, bits=8, out=None, jpeg=True,
                   sweep=False, name="images", tile=None):
    """Compresses images of several sizes with `ref`'s model of any size (see the module).

    A reference that `ModelRef.at_size` fixed to one size codes with its model of any
    size (the images were read at that size).

    Returns:
        A `Result` with arrays `decoded` and `symbols` (lists, one entry per image).
    """
    ref = ref.of_any_size()
    model = ref.model
    check_tile(ref, tile)
    for i, x in enumerate(images):
        if np.ndim(x) != 3 or np.shape(x)[-1] != model.image_shape[-1]:
            raise InvalidValue(f"Image {i} is {'x'.join(map(str, np.shape(x)))} but {ref.name} "
                             f"takes (height, width, {model.image_shape[-1]}) images. "
                             f"Received: shape={np.shape(x)}")
    with Output(out) as output:
        start = time.perf_counter()
        codes = [_encode_one(model, _float(x), tile) for x in images]
        data, symbols, header = encode_sized(ref, codes, [np.shape(x) for x in images], bits,
                                             names)
        encode_seconds = time.perf_counter() - start
        path = output.path(name + SUFFIX) if output.enabled else None
        if path:
            atomic_write(path, data)
        start = time.perf_counter()
        decoded, _ = (decode_file(path, ref, tile) if path else
                      decode_bytes(data, ref, "<bytes>", tile))
        decode_seconds = time.perf_counter() - start
        rows = [dict({"name": None if names is None else names[i]},
                     **rate_row(_float(x), d, 8 * header["payload_sizes"][i], jpeg))
                for i, (x, d) in enumerate(zip(images, decoded))]
        metrics = _metrics(ref, description, header, len(data), rows, bits, name)
        metrics["seconds"] = {"encode": round(encode_seconds, 2),
                              "decode": round(decode_seconds, 2)}
        if not jpeg:
            skip(metrics, "JPEG comparison", "not asked for (--no-jpeg)")
        if sweep:
            skip(metrics, "rate-distortion sweep", "not measured with a model of any size "
                 "(each image would be coded again at every bit depth)")
        if output.enabled:
            _plot(output.path("compress.png"), images, decoded, rows, metrics, ref)
            output.json("compress.json", metrics)
        files = output.commit()
    return Result("compress", metrics, {"decoded": decoded, "symbols": symbols}, files)


def _metrics(ref, description, header, file_bytes, rows, bits, name):
    summary = rate_summary(rows)
    pixels = summary["total"]["pixels"]
    squared = sum(10 ** (-r["psnr"] / 10) * r["height"] * r["width"] for r in rows)
    metrics = {
        "use": "compress", "model": ref.info(), "inputs": description, "count": len(rows),
        "sizes": "each image at its own size (.kae version 3)", "bits": bits,
        "file": name + SUFFIX, "file_bytes": file_bytes,
        "header_bytes": file_bytes - header["payload_bytes"],
        "payload_bytes": header["payload_bytes"],
        "bits_per_pixel": file_bytes * 8 / pixels,
        "payload_bits_per_pixel": header["payload_bytes"] * 8 / pixels,
        "psnr_db": summary["mean"]["psnr"],
        "psnr_db_of_all_pixels": psnr(squared / pixels),
        "images": rows, "mean": summary["mean"], "total": summary["total"],
        "psnr": "per image 10*log10(1/MSE) from the float MSE, pixels in [0, 1]; psnr_db "
                "is the mean of the images' PSNRs, psnr_db_of_all_pixels that of the MSE "
                "over every pixel",
        "bpp": "bits over height x width: an image's own payload segment; the total the "
               "whole file (header included) over all the pixels",
    }
    metrics.update(alpha_metrics(description))
    if "jpeg_bpp" in summary["mean"]:
        metrics["jpeg_at_equal_psnr"] = {
            "quality": "per image (the nearest PSNR)", "psnr_db": summary["mean"]["jpeg_psnr"],
            "bits_per_pixel": summary["total"]["jpeg_bpp"],
            "scan_bits_per_pixel": summary["total"]["jpeg_scan_bpp"]}
        metrics["jpeg_bits_over_ae_bits"] = summary["total"]["jpeg_bpp"] / metrics[
            "bits_per_pixel"]
    return metrics


def _plot(path, images, decoded, rows, metrics, ref):
    k = min(8, len(images))
    originals = [_float(x) for x in images[:k]]
    grid = [originals, list(decoded[:k])]
    labels = ["original", "autoencoder"]
    cells = [[r["name"] or f"{r['height']}x{r['width']}" for r in rows[:k]],
             [f"{r['psnr']:.1f} dB {r['bpp']:.2f} bpp" for r in rows[:k]]]
    if "jpeg_quality" in rows[0]:
        grid.append([jpeg_round_trip(x[None], r["jpeg_quality"])[0][0]
                     for x, r in zip(originals, rows)])
        labels.append("JPEG at equal PSNR")
        cells.append([f"q{r['jpeg_quality']} {r['jpeg_psnr']:.1f} dB {r['jpeg_bpp']:.2f} bpp"
                      for r in rows[:k]])
    title = (f"Compression with {ref.name} ({metrics['bits']}-bit codes, range coded): "
             f"{metrics['bits_per_pixel']:.3f} bits/pixel, mean PSNR {metrics['psnr_db']:.2f} dB")
    if "jpeg_at_equal_psnr" in metrics:
        j = metrics["jpeg_at_equal_psnr"]
        title += (f"\nJPEG at equal PSNR: {j['bits_per_pixel']:.3f} bits/pixel, "
                  f"{j['psnr_db']:.2f} dB")
    return _plots.image_rows(path, grid, title=title, row_labels=labels, cell_labels=cells)


def summary_lines(m, most=20):
    """The command's summary of `compress`' metrics `m`; for images of several sizes,
    per image (the first `most`) and in total, bits per pixel and PSNR, JPEG beside."""
    if "images" not in m:  # one size: bits per image
        lines = [f"autoencoder: {m['bits_per_image']:.1f} bits/image, PSNR {m['psnr_db']:.2f} dB"]
        if "jpeg_at_equal_psnr" in m:
            j = m["jpeg_at_equal_psnr"]
            lines.append(f"JPEG q={j['quality']}: {j['bits_per_image']:.1f} bits/image "
                         f"({j['scan_bits_per_image']:.1f} scan only), PSNR {j['psnr_db']:.2f} "
                         "dB" + (f" ({j['note']})" if "note" in j else ""))
        return lines + _alpha_line(m)
    jpeg = "jpeg_at_equal_psnr" in m
    lines = ["image | size | bpp | PSNR dB" + (" | JPEG q | JPEG bpp | JPEG dB" if jpeg else "")]
    for i, row in enumerate(m["images"][:most]):
        line = (f"{row['name'] or i} | {row['height']}x{row['width']} | {row['bpp']:.3f} | "
                f"{row['psnr']:.2f}")
        if jpeg:
            line += (f" | {row['jpeg_quality']} | {row['jpeg_bpp']:.3f} | {row['jpeg_psnr']:.2f}"
                     + (" *" if "jpeg_note" in row else ""))
        lines.append(line)
    if len(m["images"]) > most:
        lines.append(f"... {len(m['images']) - most} more in compress.json")
    lines.append(f"autoencoder: {m['bits_per_pixel']:.3f} bits/pixel in total ({m['file_bytes']} "
                 f"bytes, header {m['header_bytes']}), mean PSNR {m['psnr_db']:.2f} dB over "
                 f"{m['count']} images")
    if jpeg:
        j = m["jpeg_at_equal_psnr"]
        lines.append(f"JPEG at equal PSNR, per image: {j['bits_per_pixel']:.3f} bits/pixel "
                     f"({j['scan_bits_per_pixel']:.3f} scan only), mean PSNR "
                     f"{j['psnr_db']:.2f} dB: JPEG's bits / the autoencoder's "
                     f"{m['jpeg_bits_over_ae_bits']:.2f}")
        if any("jpeg_note" in r for r in m["images"]):
            lines.append("* JPEG could not reach equal PSNR there (its nearest quality)")
    return lines + _alpha_line(m)


def _alpha_line(m):
    dropped = (m.get("alpha_dropped") or {}).get("images")
    if not dropped:
        return []
    names = m["alpha_dropped"]["names"]
    return [f"transparency: {dropped} image(s) with transparency coded as RGB, alpha dropped "
            f"(decoded opaque): {', '.join(names[:3])}"
            + (f" and {len(names) - 3} more" if len(names) > 3 else "")]
