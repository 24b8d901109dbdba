"""Headless PNG figures (matplotlib, Agg): titled and labelled, at fixed pixel sizes.

Figures use the constrained layout and are saved at `DPI` without tight
bounding boxes, so a PNG's pixel size is its figure size times `DPI`: callers
and tests know it in advance. Writes are atomic (temp file, then rename).
"""

import os

import numpy as np

from kerasae._util.files import staged_file

DPI = 100
CLASS_COLORS = "tab10"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure(width, height, nrows=1, ncols=1, **kw):
    """A constrained-layout figure of `width` x `height` inches and its axes grid."""
    plt = _plt()
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained",
                        squeeze=False, **kw)


def save(fig, path):
    """Saves `fig` as a PNG of exactly `figsize * DPI` pixels, atomically."""
    path = os.fspath(path)
    try:
        with staged_file(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png")
    finally:
        _plt().close(fig)
    return path


def png_size(width, height):
    """Pixel size `(width, height)` of a figure of `width` x `height` inches."""
    return int(round(width * DPI)), int(round(height * DPI))


def bars(path, labels, values, *, title, ylabel, annotations=None, ylim=None, colors=None,
         hline=None):
    """A bar chart (6.4 x 4.0 in) with each value printed on its bar; `hline=(y, label)`."""
    fig, axes = figure(6.4, 4.0)
    ax = axes[0, 0]
    colors = colors or [f"C{i}" for i in range(len(labels))]
    rects = ax.bar(range(len(labels)), values, color=colors)
    if hline is not None:
        ax.axhline(hline[0], color="0.4", linestyle=":", label=hline[1])
        ax.legend(fontsize=8, loc="upper right")
    for i, (rect, v) in enumerate(zip(rects, values)):
        note = f"{v:.3f}" if annotations is None else annotations[i]
        ax.annotate(note, (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    ha="center", va="bottom", fontsize=9, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def grouped_bars(path, names, groups, *, title, xlabel, ylabel, ylim=None, hline=None):
    """Side-by-side bars per name (10 x 4.2 in); `groups=[(values, label)]`."""
    fig, axes = figure(10.0, 4.2)
    ax = axes[0, 0]
    idx = np.arange(len(names))
    width = 0.8 / len(groups)
    for g, (values, label) in enumerate(groups):
        ax.bar(idx - 0.4 + width * (g + 0.5), values, width, label=label)
    if hline is not None:
        ax.axhline(hline[0], color="0.5", linestyle=":", label=hline[1])
    ax.set_xticks(idx)
    ax.set_xticklabels(names, rotation=20, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        # Headroom above the bars for a one-line legend.
        ax.set_ylim(ylim[0], ylim[1] + 0.12 * (ylim[1] - ylim[0]))
    ax.legend(fontsize=8, loc="upper center", ncol=len(groups) + (hline is not None))
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def scatter_panels(path, panels, labels, label_names, *, title):
    """Side-by-side 2-D scatters coloured by class (5 in per panel + legend, 5.2 in high).

    `panels` is a list of `(points, subtitle, xlabel, ylabel)`.
    """
    plt = _plt()
    fig, axes = figure(5.0 * len(panels) + 1.4, 5.2, 1, len(panels))
    cmap = plt.get_cmap(CLASS_COLORS)
    classes = np.unique(labels) if labels is not None else [None]
    for ax, (points, subtitle, xlabel, ylabel) in zip(axes[0], panels):
        for k in classes:
            sel = slice(None) if k is None else labels == k
            name = "images" if k is None else (
                label_names[k] if label_names and k < len(label_names) else str(k))
            ax.scatter(points[sel, 0], points[sel, 1], s=3, alpha=0.5,
                       color=cmap(int(k) % 10) if k is not None else "C0", label=name,
                       rasterized=True)
        ax.set_title(subtitle, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    handles, names = axes[0, 0].get_legend_handles_labels()
    leg = fig.legend(handles, names, loc="outside right center", markerscale=4, fontsize=8,
                     title="class" if labels is not None else None)
    for h in leg.legend_handles:
        h.set_alpha(1.0)
    fig.suptitle(title)
    return save(fig, path)


def curves(path, series, *, title, xlabel, ylabel, points=(), logx=False, logy=False,
           notes=()):
    """Lines `series=[(x, y, label)]` plus starred `points=[(x, y, label)]` (6.8 x 4.6 in).

    `notes` are `(x, y, text)` or `(x, y, text, (dx, dy))` with an offset in points.
    """
    fig, axes = figure(6.8, 4.6)
    ax = axes[0, 0]
    for i, (x, y, label) in enumerate(series):
        ax.plot(x, y, "-", marker="." if len(x) < 40 else None, color=f"C{i}", label=label)
    for j, (x, y, label) in enumerate(points):
        ax.plot([x], [y], marker="*", markersize=14, linestyle="none",
                color=f"C{len(series) + j}", label=label)
    for note in notes:
        x, y, text = note[:3]
        offset = note[3] if len(note) > 3 else (6, 6)
        ax.annotate(text, (x, y), fontsize=8, xytext=offset, textcoords="offset points")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


def anomaly_panels(path, normal, anomalous, threshold, fpr, tpr, auc, *, title,
                   anomaly_name, baseline=None):
    """Score histograms with the threshold, and the ROC curve (11 x 4.6 in)."""
    fig, axes = figure(11.0, 4.6, 1, 2)
    ax1, ax2 = axes[0]
    both = np.concatenate([normal, anomalous])
    hi = float(np.percentile(both, 99.5)) if len(both) else 1.0
    bins = np.linspace(0, max(hi, threshold * 1.1, 1e-12), 60)
    ax1.hist(np.clip(normal, 0, bins[-1]), bins=bins, alpha=0.6, density=True,
             label=f"normal test images ({len(normal)})")
    ax1.hist(np.clip(anomalous, 0, bins[-1]), bins=bins, alpha=0.6, density=True,
             label=f"anomaly: {anomaly_name} ({len(anomalous)})")
    ax1.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.4f}")
    ax1.set_xlabel("anomaly score: reconstruction MSE per image")
    ax1.set_ylabel("density")
    ax1.set_title("Score distributions", fontsize=10)
    ax1.legend(fontsize=8)
    ax2.plot(fpr, tpr, color="C3", label=f"autoencoder (AUC {auc:.3f})")
    if baseline is not None:
        bfpr, btpr, bauc, blabel = baseline
        ax2.plot(bfpr, btpr, color="C2", label=f"{blabel} (AUC {bauc:.3f})")
    ax2.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="chance (AUC 0.5)")
    ax2.set_xlabel("false positive rate")
    ax2.set_ylabel("true positive rate")
    ax2.set_title("ROC curve", fontsize=10)
    ax2.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


def score_histogram(path, scores, threshold, *, title, baseline=None, what="images",
                    labels=None):
    """Histogram of anomaly scores with the threshold; `labels` (bool, one per score)
    splits it into normal and labelled anomalies; `baseline` is `(scores, threshold,
    label)` of another scorer, drawn beside it (11 x 4.6 in)."""
    fig, axes = figure(11.0, 4.6, 1, 2 if baseline is not None else 1)
    panels = [(scores, threshold, "autoencoder reconstruction MSE")]
    if baseline is not None:
        panels.append(baseline)
    for ax, (values, t, label) in zip(axes[0], panels):
        values = np.asarray(values)
        hi = float(np.percentile(values, 99.5)) if len(values) else 1.0
        bins = np.linspace(min(0.0, float(values.min(initial=0.0))), max(hi, t * 1.1, 1e-12), 60)
        flagged = int(np.sum(values > t))
        groups = ([(values, f"{len(values)} {what}, {flagged} above the threshold")]
                  if labels is None else
                  [(values[~labels], f"labelled normal ({int((~labels).sum())})"),
                   (values[labels], f"labelled anomaly ({int(labels.sum())})")])
        for part, text in groups:
            ax.hist(np.clip(part, bins[0], bins[-1]), bins=bins, alpha=0.6, label=text,
                    density=labels is not None)
        ax.axvline(t, color="k", linestyle="--", label=f"threshold {t:.4g}")
        ax.set_xlabel(f"anomaly score: {label}")
        ax.set_ylabel(what if labels is None else "density")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


def series_scores(path, values, scores, threshold, *, windows, columns, title):
    """A series over time (top), its anomaly score per step with the threshold (bottom);
    `windows` `[(first, last), ...]` (labelled anomalies) shaded, flagged steps marked
    (12 x 6 in)."""
    fig, axes = figure(12.0, 6.0, 2, 1, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    steps = np.arange(len(scores))
    shown = np.asarray(values[:, :5], dtype="float64")
    # Channels of other levels or scales (a temperature near 20, a pressure near 1013)
    # would draw flat on one axis: several are shown standardised (own mean and spread).
    standardised = shown.shape[1] > 1
    if standardised:
        spread = np.nanstd(shown, axis=0)
        shown = (shown - np.nanmean(shown, axis=0)) / np.where(spread > 0, spread, 1.0)
    for j in range(shown.shape[1]):
        top.plot(steps, shown[:, j], linewidth=0.7, label=str(columns[j]))
    bottom.plot(steps, scores, linewidth=0.7, color="C3", label="score")
    bottom.axhline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.4g}")
    flagged = np.flatnonzero(np.nan_to_num(scores, nan=-np.inf) > threshold)
    bottom.plot(flagged, scores[flagged], "o", markersize=2, color="k",
                label=f"{len(flagged)} flagged steps")
    for k, (a, b) in enumerate(windows):
        for ax in (top, bottom):
            ax.axvspan(a, b, color="C2", alpha=0.2,
                       label="labelled anomaly window" if k == 0 and ax is top else None)
    top.set_ylabel("value, standardised per channel" if standardised else "value")
    top.legend(fontsize=8, loc="upper left")
    bottom.set_yscale("symlog", linthresh=max(float(threshold) / 10, 1e-9))
    bottom.set_xlabel("time step")
    bottom.set_ylabel("reconstruction MSE")
    bottom.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


def _show(ax, img):
    img = np.clip(np.asarray(img, dtype="float32"), 0.0, 1.0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def image_rows_size(n_rows, n_cols):
    """Inches of an `image_rows` figure."""
    return 1.25 * n_cols + 1.6, 1.35 * n_rows + 1.2


def image_rows(path, rows, *, title, row_labels, col_labels=None, cell_labels=None):
    """A grid of images, one row per entry of `rows`, rows labelled on the left.

    `col_labels` title the first row; `cell_labels[i][j]` titles image `j` of row `i`.
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = figure(*image_rows_size(n_rows, n_cols), n_rows, n_cols)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            if j < len(row):
                _show(ax, row[j])
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
            if cell_labels is not None and i < len(cell_labels) and cell_labels[i] is not None \
                    and j < len(cell_labels[i]):
                ax.set_title(cell_labels[i][j], fontsize=7)
            elif i == 0 and col_labels is not None and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def image_grid_size(nrow, ncol, panels=1):
    return max((0.6 * ncol + 0.6) * panels + 0.4, 7.5), 0.6 * nrow + 1.5


def _mosaic(images, nrow):
    images = np.clip(np.asarray(images, dtype="float32"), 0, 1)
    n, h, w, c = images.shape
    ncol = int(np.ceil(n / nrow))
    canvas = np.ones((nrow * (h + 1) + 1, ncol * (w + 1) + 1, c), dtype="float32")
    for i in range(n):
        r, q = divmod(i, ncol)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = images[i]
    return canvas[..., 0] if c == 1 else canvas, ncol


def image_grid(path, panels, *, title, nrow):
    """Mosaics of images side by side; `panels=[(images, subtitle, xlabel)]`."""
    ncol = int(np.ceil(len(panels[0][0]) / nrow))
    fig, axes = figure(*image_grid_size(nrow, ncol, len(panels)), 1, len(panels))
    for ax, (images, subtitle, xlabel) in zip(axes[0], panels):
        canvas, _ = _mosaic(images, nrow)
        ax.imshow(canvas, cmap="gray" if canvas.ndim == 2 else None, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(subtitle, fontsize=9)
        if xlabel:
            ax.set_xlabel(xlabel, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def reconstructions(originals, reconstructed, path, title="Originals vs reconstructions"):
    """Two rows: originals on top, reconstructions below, each titled with its MSE."""
    originals = np.asarray(originals, dtype="float32")
    reconstructed = np.asarray(reconstructed, dtype="float32")
    mse = ((originals - reconstructed) ** 2).reshape(len(originals), -1).mean(axis=1)
    return image_rows(path, [originals, reconstructed], title=title,
                      row_labels=["original", "reconstruction"],
                      col_labels=[f"MSE {m:.4f}" for m in mse])
