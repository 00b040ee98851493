"""The figures: cost against accuracy (the paper's Figure 1), the qualitative comparison (Figure 6) and
the validation curves of every run.

No figure has a title (that is the caption's job). Files carry no timestamp or software version, so the
same inputs give byte-identical PNG and PDF files. ``palette="colorblind"`` (params.yaml
``report.palette``) uses the Okabe-Ito colours throughout.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
TAB10 = list(plt.get_cmap("tab10").colors)
# Overlay colours of the qualitative figure (RGB 0-255): correct lesion, over-, under-segmented, ground truth.
OVERLAYS = {
    "default": {"tp": (255, 220, 0), "fp": (230, 30, 30), "fn": (30, 200, 30), "gt": (0, 150, 255)},
    "colorblind": {"tp": (240, 228, 66), "fp": (213, 94, 0), "fn": (0, 114, 178), "gt": (204, 121, 167)},
}
OVERLAY_LABELS = {
    "tp": "correct lesion pixels",
    "fp": "over-segmented",
    "fn": "under-segmented",
    "gt": "ground truth",
}
BUBBLE_AREA_PER_POINT = 12.0  # marker area (pt^2) per Dice percentage point: area proportional to mDice


def colours(palette: str, n: int) -> list:
    base = OKABE_ITO if palette == "colorblind" else TAB10
    return [base[i % len(base)] for i in range(n)]


# --------------------------------------------------------------------------------------------------
# Figure 1: bubble chart
# --------------------------------------------------------------------------------------------------


def _circle_hits_box(cx, cy, r, box) -> bool:
    x0, y0, x1, y1 = box
    nx, ny = min(max(cx, x0), x1), min(max(cy, y0), y1)
    return (nx - cx) ** 2 + (ny - cy) ** 2 < r * r


def _boxes_overlap(a, b, pad: float = 1.0) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def place_labels(ax, xs, ys, radii_px, texts: list[str], bold: list[bool], fontsize: float = 7) -> list:
    """Annotate each point with its text where the label's box overlaps no other label, no bubble and stays
    inside the axes: candidate positions on rings around the bubble, tried in a fixed order (deterministic)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    centres = ax.transData.transform(np.column_stack([xs, ys]))
    frame = ax.get_window_extent(renderer)
    bounds = (frame.x0, frame.y0, frame.x1, frame.y1)
    placed: list[tuple[float, float, float, float]] = []
    angles = [90, 45, 135, 0, 180, -45, -135, -90, 67.5, 112.5, 22.5, 157.5, -22.5, -157.5, -67.5, -112.5]
    px_per_pt = fig.dpi / 72
    order = sorted(range(len(texts)), key=lambda i: -radii_px[i])  # big bubbles first: least room around them
    annotations: dict[int, object] = {}
    for i in order:
        probe = ax.text(0, 0, texts[i], fontsize=fontsize, fontweight="bold" if bold[i] else "normal")
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h = extent.width, extent.height
        cx, cy = centres[i]
        chosen = None
        for gap in (3, 10, 20, 32, 46, 62, 80, 100, 125, 155):
            for angle in angles:
                ux, uy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
                bx = cx + ux * (radii_px[i] + gap * px_per_pt + w / 2)
                by = cy + uy * (radii_px[i] + gap * px_per_pt + h / 2)
                box = (bx - w / 2, by - h / 2, bx + w / 2, by + h / 2)
                inside = box[0] >= bounds[0] and box[1] >= bounds[1] and box[2] <= bounds[2] and box[3] <= bounds[3]
                if not inside or any(_boxes_overlap(box, p) for p in placed):
                    continue
                if any(_circle_hits_box(*centres[k], radii_px[k], box) for k in range(len(texts))):
                    continue
                chosen = (bx, by, gap)
                break
            if chosen:
                break
        if chosen is None:  # no free spot: stack below the axes' bottom-left corner, never on another label
            bx = bounds[0] + w / 2 + 2
            by = bounds[1] + h / 2 + 2 + sum(p[3] - p[1] + 2 for p in placed if p[0] < bounds[0] + 1)
            chosen = (bx, by, 999)
        bx, by, gap = chosen
        placed.append((bx - w / 2, by - h / 2, bx + w / 2, by + h / 2))
        annotations[i] = ax.annotate(
            texts[i],
            (xs[i], ys[i]),
            xytext=((bx - cx) / px_per_pt, (by - cy) / px_per_pt),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=fontsize,
            fontweight="bold" if bold[i] else "normal",
            arrowprops={"arrowstyle": "-", "color": "0.4", "lw": 0.5, "shrinkA": 0, "shrinkB": 0} if gap > 10 else None,
            annotation_clip=False,
        )
    return [annotations[i] for i in range(len(texts))]


def bubble_chart(rows, palette: str = "default") -> plt.Figure:
    """GFLOPs against parameters; bubble AREA proportional to mean Dice, colour = family, a size legend,
    the reference model ("Ours") drawn with a thick black edge and a bold label.

    ``rows``: DataFrame with ``label``, ``family``, ``params_m``, ``gflops``, ``mdice`` (%), ``ours`` (bool).
    """
    fig, ax = plt.subplots(figsize=(7.0, 5.0), dpi=150)
    x, y = rows["params_m"].to_numpy(float), rows["gflops"].to_numpy(float)
    dice = np.clip(rows["mdice"].to_numpy(float), 0, None)
    sizes = BUBBLE_AREA_PER_POINT * np.nan_to_num(dice)
    families = list(dict.fromkeys(rows["family"]))
    colour_of = dict(zip(families, colours(palette, len(families)), strict=True))
    ours = rows["ours"].to_numpy(bool)
    ax.scatter(
        x,
        y,
        s=sizes,
        c=[colour_of[f] for f in rows["family"]],
        alpha=0.7,
        edgecolors=np.where(ours, "black", "0.3"),
        linewidths=np.where(ours, 2.2, 0.6),
        zorder=2,
    )
    ax.set_xlabel("Parameters (M)")
    ax.set_ylabel("GFLOPs (fvcore)")
    ax.grid(True, alpha=0.3, zorder=0)
    pad_x = max(np.ptp(x) * 0.25, 1.0)
    pad_y = max(np.ptp(y) * 0.25, 1.0)
    ax.set_xlim(max(0.0, x.min() - pad_x), x.max() + pad_x)
    ax.set_ylim(max(0.0, y.min() - pad_y), y.max() + pad_y)
    family_handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=8,
            markerfacecolor=colour_of[f],
            markeredgecolor="0.3",
            alpha=0.7,
            label=f,
        )
        for f in families
    ]
    if ours.any():
        family_handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=8,
                markerfacecolor="none",
                markeredgecolor="black",
                markeredgewidth=2.2,
                label="Ours (reference)",
            )
        )
    finite = dice[np.isfinite(dice) & (dice > 0)]
    refs = []
    if len(finite):
        ticks = MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]).tick_values(finite.min(), finite.max())
        refs = [float(t) for t in ticks if 0 < t <= finite.max() * 1.05] or [float(finite.max())]
    size_handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=math.sqrt(BUBBLE_AREA_PER_POINT * v),
            markerfacecolor="0.85",
            markeredgecolor="0.3",
            label=f"{v:g}%",
        )
        for v in refs
        if v > 0
    ]
    first = ax.legend(
        handles=family_handles,
        title="Family",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7,
        title_fontsize=7,
        frameon=False,
    )
    ax.add_artist(first)
    biggest = max((h.get_markersize() for h in size_handles), default=7.0) / 7.0  # in font sizes (7 pt)
    ax.legend(
        handles=size_handles,
        title="mean Dice (area)",
        loc="lower left",
        bbox_to_anchor=(1.01, 0.0),
        fontsize=7,
        title_fontsize=7,
        frameon=False,
        labelspacing=0.8 * biggest,
        borderpad=0.6 * biggest,
        handlelength=biggest,
        handletextpad=0.8,
    )
    fig.tight_layout()
    fig.canvas.draw()
    radii = np.sqrt(sizes) / 2 * fig.dpi / 72
    texts = [f"{r['label']}\n{r['mdice']:.1f}" for _, r in rows.iterrows()]
    place_labels(ax, x, y, radii, texts, list(ours))
    return fig


# --------------------------------------------------------------------------------------------------
# Figure 6: qualitative comparison
# --------------------------------------------------------------------------------------------------


def blend(image: np.ndarray, masks: list[tuple[np.ndarray, tuple]], alpha: float = 0.55) -> np.ndarray:
    out = image.astype(np.float32).copy()
    for mask, colour in masks:
        out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(colour, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def error_overlay(image, pred, truth, palette: str = "default") -> np.ndarray:
    """The image with correct lesion pixels, over-segmented and under-segmented pixels in the palette's colours."""
    c = OVERLAYS[palette]
    return blend(image, [(pred & truth, c["tp"]), (pred & ~truth, c["fp"]), (~pred & truth, c["fn"])])


def qualitative_grid(
    samples: list[dict], models: list[str], labels: dict[str, str], dataset: str, palette: str = "default"
) -> plt.Figure:
    """One row per test image: the image, its ground truth (own colour), each model's prediction as an
    error overlay with that image's Dice; a swatch legend below.

    Each sample: ``id``, ``image`` (H x W x 3 uint8), ``truth`` (H x W bool), ``preds`` (model -> bool mask),
    ``dice`` (model -> Dice in %).
    """
    c = OVERLAYS[palette]
    n_cols = 2 + len(models)
    fig, axes = plt.subplots(
        len(samples), n_cols, figsize=(1.5 * n_cols, 1.55 * len(samples) + 0.45), dpi=150, squeeze=False
    )
    for r, sample in enumerate(samples):
        panels = [sample["image"], blend(sample["image"], [(sample["truth"], c["gt"])])]
        panels += [error_overlay(sample["image"], sample["preds"][m], sample["truth"], palette) for m in models]
        titles = ["Image", "Ground truth", *(labels[m] for m in models)]
        for k, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            ax = axes[r, k]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
            if k >= 2:
                value = sample["dice"].get(models[k - 2], float("nan"))
                text = "Dice –" if math.isnan(value) else f"Dice {value:.1f}"
                ax.text(
                    0.03,
                    0.03,
                    text,
                    transform=ax.transAxes,
                    fontsize=6,
                    color="white",
                    va="bottom",
                    bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.2, "linewidth": 0},
                )
        axes[r, 0].set_ylabel(f"{dataset}\n{sample['id']}", fontsize=6)
    handles = [
        Patch(facecolor=np.asarray(c[k]) / 255, edgecolor="0.3", label=OVERLAY_LABELS[k])
        for k in ("gt", "tp", "fp", "fn")
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.3 / (1.55 * len(samples) + 0.45), 1, 1))
    return fig


# --------------------------------------------------------------------------------------------------
# Validation curves
# --------------------------------------------------------------------------------------------------


def val_curves(
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], reference: str | None = None, palette: str = "default"
) -> plt.Figure:
    """One panel per dataset, one line per model: validation Dice (%) against epoch (mean over seeds).

    ``curves``: dataset label -> model label -> (epochs, val Dice %); ``reference``: label drawn thicker.
    """
    names = list(curves)
    n = max(len(names), 1)
    n_cols = min(n, 3)
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols + 1.8, 2.8 * n_rows), dpi=150, squeeze=False)
    all_models = list(dict.fromkeys(m for c in curves.values() for m in c))
    palette_colours = colours(palette, len(all_models))
    styles = ["-", "--", ":", "-."]
    base = len(OKABE_ITO if palette == "colorblind" else TAB10)
    style_of = {m: (palette_colours[i], styles[(i // base) % len(styles)]) for i, m in enumerate(all_models)}
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.axis("off")
            continue
        for model, (epochs, values) in curves[names[k]].items():
            colour, style = style_of[model]
            ax.plot(
                epochs,
                values,
                style,
                color=colour,
                lw=2.2 if model == reference else 1.0,
                label=model,
                marker="o" if len(epochs) < 12 else None,
                markersize=2.5,
            )
        ax.set_title(names[k], fontsize=8)  # panel label (which dataset), not a figure title
        ax.set_xlabel("epoch", fontsize=7)
        ax.set_ylabel("validation Dice (%)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(True, alpha=0.3)
    if not names:
        axes[0, 0].text(
            0.5, 0.5, "no training log (runs/<D>/<M>/seed<S>/log.csv) found", ha="center", va="center", fontsize=8
        )
    handles = [
        Line2D([], [], color=style_of[m][0], linestyle=style_of[m][1], lw=2.2 if m == reference else 1.0, label=m)
        for m in all_models
    ]
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.8 / (3.6 * n_cols + 1.8), 1))
    return fig


def figure_bytes(fig: plt.Figure, fmt: str) -> bytes:
    """Render a figure to PNG or PDF bytes with deterministic metadata (no figure is closed here)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata=PNG_METADATA if fmt == "png" else PDF_METADATA)
    return buf.getvalue()


def both_formats(fig: plt.Figure) -> tuple[bytes, bytes]:
    """(PNG, PDF) of a figure, then close it."""
    try:
        return figure_bytes(fig, "png"), figure_bytes(fig, "pdf")
    finally:
        plt.close(fig)
