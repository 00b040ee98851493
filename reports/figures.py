"""The paper's figures from pipeline outputs: the cost/accuracy bubble chart (Figure 1) and the
qualitative comparison (Figure 6)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Deterministic files: no timestamps or software versions in the metadata.
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}

TP_COLOUR = np.array([255, 220, 0])  # found lesion: yellow
FP_COLOUR = np.array([230, 30, 30])  # over-segmented: red
FN_COLOUR = np.array([30, 200, 30])  # under-segmented: green


def bubble_chart(rows: pd.DataFrame) -> plt.Figure:
    """Figure 1: GFLOPs against parameters; bubble area and colour = mean Dice; each bubble labelled.

    ``rows`` has columns ``label``, ``params_m``, ``gflops`` and ``mdice`` (percent).
    """
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=150)
    dice = rows["mdice"].to_numpy(dtype=float)
    lo, hi = np.nanmin(dice), np.nanmax(dice)
    span = hi - lo if hi > lo else 1.0
    sizes = 150 + 1350 * (dice - lo) / span
    points = ax.scatter(
        rows["params_m"],
        rows["gflops"],
        s=sizes,
        c=dice,
        cmap="viridis",
        alpha=0.75,
        edgecolors="black",
        linewidths=0.6,
    )
    for _, r in rows.iterrows():
        ax.annotate(
            f"{r['label']}\n{r['mdice']:.2f}",
            (r["params_m"], r["gflops"]),
            textcoords="offset points",
            xytext=(0, 12),
            ha="center",
            fontsize=7,
        )
    ax.set_xlabel("Parameters (M)")
    ax.set_ylabel("GFLOPs (fvcore, 1x3x224x224)")
    ax.set_title("Cost against accuracy (bubble size and colour: mean Dice %)")
    ax.grid(True, alpha=0.3)
    ax.margins(0.15)
    fig.colorbar(points, ax=ax, label="mean Dice (%)")
    fig.tight_layout()
    return fig


def error_overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The image with true positives yellow, over-segmented pixels red, under-segmented green."""
    out = image.astype(np.float32).copy()
    for mask, colour in ((pred & truth, TP_COLOUR), (pred & ~truth, FP_COLOUR), (~pred & truth, FN_COLOUR)):
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
    return out.clip(0, 255).astype(np.uint8)


def qualitative_grid(samples: list[dict], model_labels: list[str]) -> plt.Figure:
    """Figure 6: one row per sample, columns image, ground truth and each model's prediction over the image.

    Each sample: ``title``, ``image`` (H x W x 3 uint8), ``truth`` (H x W bool) and ``preds``
    (model label -> H x W bool).
    """
    n_cols = 2 + len(model_labels)
    fig, axes = plt.subplots(len(samples), n_cols, figsize=(1.7 * n_cols, 1.8 * len(samples)), dpi=150, squeeze=False)
    for r, sample in enumerate(samples):
        truth_view = error_overlay(sample["image"], sample["truth"], sample["truth"])
        panels = [sample["image"], truth_view] + [
            error_overlay(sample["image"], sample["preds"][m], sample["truth"]) for m in model_labels
        ]
        titles = ["Image", "Ground truth", *model_labels]
        for c, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
        axes[r, 0].set_ylabel(sample["title"], fontsize=6)
    fig.text(
        0.5,
        0.005,
        "yellow: correct lesion pixels   red: over-segmented   green: under-segmented",
        ha="center",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


def figure_bytes(fig: plt.Figure, fmt: str) -> bytes:
    """Render a figure to PNG or PDF bytes with deterministic metadata, and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata=PNG_METADATA if fmt == "png" else PDF_METADATA)
    plt.close(fig)
    return buf.getvalue()
