"""Headless PNG figures (matplotlib, Agg backend). Every figure is titled and labelled."""

import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _show(ax, img):
    img = np.asarray(img, dtype="float32")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 1:
        side = int(round(np.sqrt(img.size)))
        img = img.reshape(side, -1) if side * side == img.size else img[None, :]
    ax.imshow(np.clip(img, 0.0, 1.0), cmap="gray" if img.ndim == 2 else None,
              vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig, path):
    """Saves atomically: a failed save leaves no partial PNG behind."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        _plt().close(fig)
    return path


def image_rows(rows, path, title, row_labels, col_labels=None):
    """A grid of images: one row per entry of `rows` (each a sequence of images)."""
    plt = _plt()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols, 1.45 * n_rows + 0.5),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            if j < len(row):
                _show(ax, row[j])
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=9)
            if i == 0 and col_labels is not None and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def reconstructions(originals, reconstructed, path, title="Originals vs reconstructions"):
    """Two rows: originals on top, reconstructions below, with per-image MSE."""
    originals = np.asarray(originals, dtype="float32")
    reconstructed = np.asarray(reconstructed, dtype="float32")
    mse = ((originals - reconstructed) ** 2).reshape(len(originals), -1).mean(axis=1)
    return image_rows(
        [originals, reconstructed], path, title,
        ["original", "reconstruction"], [f"MSE {m:.4f}" for m in mse],
    )
