"""The figures: cost against accuracy (the paper's Figure 1), the qualitative comparison (Figure 6) and
the training curves of every run (validation Dice, or the training loss without a validation split).

No figure has a title (that is the caption's job): each carries its caption under the axes
(:func:`add_caption`; the report writes the same text under the figure in ``figures.md``), saying what it
shows, on which datasets, at which image size, with which training budget and whether the recipe is the
paper's. Files carry no timestamp or software version, so the same inputs give byte-identical PNG and PDF
files. ``palette="colorblind"`` (params.yaml ``report.palette``) uses the Okabe-Ito colours throughout.
"Ours" has a colour of its own in every figure (:data:`OURS`, orange in both palettes); other models and
families are drawn from the rest of the palette (:func:`colours`), never in it. Legends sit beside their axes.
"""

from __future__ import annotations

import io
import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from reports.overlays import OVERLAY_LABELS, OVERLAYS  # noqa: E402

PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
TAB10 = [to_hex(c) for c in plt.get_cmap("tab10").colors]
OURS = {"default": TAB10[1], "colorblind": OKABE_ITO[0]}  # the reference model's / "Ours" family's colour
BUBBLE_AREA_AT_100 = 900.0  # marker area (pt^2) of a mean Dice of 100%: area proportional to the Dice
SIZE_LEGEND = (25.0, 50.0, 100.0)  # mean Dice (%) of the size legend's circles, whatever the data
CAPTION_FONTSIZE = 6.5
CAPTION_MARGIN = 0.1  # inches between the caption and the figure's edges


def colours(palette: str, n: int) -> list[str]:
    """``n`` colours of the palette for models or families other than Ours: never Ours' colour."""
    base = [c for c in (OKABE_ITO if palette == "colorblind" else TAB10) if c != OURS[palette]]
    return [base[i % len(base)] for i in range(n)]


# --------------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------------


def _wrapped(fig: plt.Figure, text: str, width_px: float) -> str:
    """``text`` broken into lines no wider than ``width_px`` at the caption's font size (measured, not guessed)."""
    renderer = fig.canvas.get_renderer()
    chars = max(20, int(width_px / (CAPTION_FONTSIZE * fig.dpi / 72 * 0.45)))  # a first guess, then measured
    while True:
        wrapped = "\n".join(textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False))
        probe = fig.text(0, 0, wrapped, fontsize=CAPTION_FONTSIZE)
        width = probe.get_window_extent(renderer).width
        probe.remove()
        if width <= width_px or chars <= 20:
            return wrapped
        chars = max(20, int(chars * min(0.97, width_px / width)))


def add_caption(fig: plt.Figure, text: str) -> float:
    """Grow the figure at the bottom by the height of ``text`` wrapped to its width and write it there (the
    figure's last text). Returns the fraction of the new height the caption takes: the layout's bottom."""
    if not text:
        return 0.0
    width, height = fig.get_size_inches()
    wrapped = _wrapped(fig, text, (width - 2 * CAPTION_MARGIN) * fig.dpi)
    probe = fig.text(0, 0, wrapped, fontsize=CAPTION_FONTSIZE)
    extra = probe.get_window_extent(fig.canvas.get_renderer()).height / fig.dpi + 2 * CAPTION_MARGIN
    probe.remove()
    fig.set_size_inches(width, height + extra)
    total = height + extra
    fig.text(CAPTION_MARGIN / width, CAPTION_MARGIN / total, wrapped, fontsize=CAPTION_FONTSIZE, ha="left", va="bottom")
    return extra / total


def caption_of(fig: plt.Figure) -> str:
    """The caption :func:`add_caption` wrote, on one line ("" when none)."""
    return " ".join(fig.texts[-1].get_text().split()) if fig.texts else ""


# --------------------------------------------------------------------------------------------------
# Figure 1: bubble chart
# --------------------------------------------------------------------------------------------------


def _circle_hits_box(cx, cy, r, box) -> bool:
    x0, y0, x1, y1 = box
    nx, ny = min(max(cx, x0), x1), min(max(cy, y0), y1)
    return (nx - cx) ** 2 + (ny - cy) ** 2 < r * r


def _boxes_overlap(a, b, pad: float = 1.0) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def place_labels(ax, xs, ys, radii_px, texts: list[str], *, bold: list[bool], fontsize: float = 7) -> list:
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


def bubble_areas(dice: np.ndarray) -> np.ndarray:
    """Marker areas (pt^2) proportional to mean Dice (%): :data:`BUBBLE_AREA_AT_100` at 100%, so that a
    bubble of half the area is half the Dice; 0 for NaN."""
    dice = np.asarray(dice, dtype=float)
    return np.where(np.isfinite(dice), BUBBLE_AREA_AT_100 * np.clip(dice, 0, 100) / 100, 0.0)


def _value_text(v: float) -> str:
    return np.format_float_positional(v, precision=6, trim="-")


def _size_legend(ax, handles: list[Line2D], gap_pt: float = 3.0):
    """The size legend beside the axes, its rows spaced so that neighbouring circles never touch: laid out,
    measured, and laid out again with the missing space added (matplotlib's row height is not the marker's)."""
    fig = ax.figure
    box = max(h.get_markersize() for h in handles) / 7.0  # in font sizes (7 pt): circles fit their handle box
    options = {
        "title": "mean Dice (area ∝ Dice)",
        "loc": "lower left",
        "bbox_to_anchor": (1.01, 0.0),
        "fontsize": 7,
        "title_fontsize": 7,
        "frameon": False,
        "handleheight": box,
        "handlelength": box,
        "borderpad": 0.4,
        "handletextpad": 0.8,
    }
    legend = ax.legend(handles=handles, labelspacing=0.4, **options)
    if len(handles) < 2:
        return legend
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    points = 72 / fig.dpi
    centres = [(lambda e: (e.y0 + e.y1) / 2)(h.get_window_extent(renderer)) for h in legend.legend_handles]
    short = max(  # points missing between the two closest circles
        (a.get_markersize() + b.get_markersize()) / 2 + gap_pt - abs(ya - yb) * points
        for a, b, ya, yb in zip(handles, handles[1:], centres, centres[1:], strict=False)
    )
    if short <= 0:
        return legend
    legend.remove()
    return ax.legend(handles=handles, labelspacing=0.4 + short / 7.0, **options)


def _marker(label: str, size: float, face, edge="0.3", width: float = 1.0, alpha: float | None = None) -> Line2D:
    """A legend handle: one circle of diameter ``size`` points."""
    return Line2D(
        [],
        [],
        marker="o",
        linestyle="",
        markersize=size,
        markerfacecolor=face,
        markeredgecolor=edge,
        markeredgewidth=width,
        alpha=alpha,
        label=label,
    )


def bubble_label(row) -> str:
    """A bubble's label: the model's name with its row flags as in the tables (``Unet (D, U)``), its mean Dice."""
    marks = tuple(row.get("flags", ()) or ())
    name = f"{row['label']} ({', '.join(marks)})" if marks else row["label"]
    return f"{name}\n{row['mdice']:.1f}"


def bubble_chart(
    rows, palette: str = "default", *, gflops_label: str = "GFLOPs (fvcore)", caption: str = ""
) -> plt.Figure:
    """GFLOPs against parameters; bubble area proportional to mean Dice (:func:`bubble_areas`; a size legend of
    :data:`SIZE_LEGEND`), a dot at each model's point, colour = family ("Ours" in :data:`OURS`), the reference
    model drawn with a thick black edge and a bold label; each label: name, row flags, mean Dice.

    ``rows``: DataFrame with ``label``, ``family``, ``params_m``, ``gflops``, ``mdice`` (%), ``ours`` (bool) and
    optionally ``flags`` (tuples of letters). ``gflops_label``: the y axis (it names the size counted at);
    ``caption``: written under the axes (:func:`add_caption`).
    """
    fig, ax = plt.subplots(figsize=(7.0, 5.0), dpi=150)
    bottom = add_caption(fig, caption)
    x, y = rows["params_m"].to_numpy(float), rows["gflops"].to_numpy(float)
    sizes = bubble_areas(rows["mdice"].to_numpy(float))
    families = list(dict.fromkeys(rows["family"]))
    others = iter(colours(palette, len(families)))
    colour_of = {f: OURS[palette] if f == "Ours" else next(others) for f in families}
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
    ax.scatter(x, y, s=3, c="0.15", linewidths=0, zorder=3)  # where each model is, however small its Dice
    ax.set_xlabel("Parameters (M)")
    ax.set_ylabel(gflops_label)
    ax.grid(True, alpha=0.3, zorder=0)
    pad_x = max(np.ptp(x) * 0.25, 1.0)
    pad_y = max(np.ptp(y) * 0.25, 0.15 * float(np.abs(y).max()), 1e-3)  # GFLOPs at 32 px are a few hundredths
    ax.set_xlim(max(0.0, x.min() - pad_x), x.max() + pad_x)
    ax.set_ylim(max(0.0, y.min() - pad_y), y.max() + pad_y)
    family_handles = [_marker(f, 8, colour_of[f], alpha=0.7) for f in families]
    if ours.any():
        family_handles.append(_marker("Ours (reference)", 8, "none", edge="black", width=2.2))
    # markersize is the diameter in points, scatter's s the area in pt^2
    areas = bubble_areas(np.array(SIZE_LEGEND))
    size_handles = [
        _marker(f"{_value_text(v)}%", math.sqrt(a), "0.85") for v, a in zip(SIZE_LEGEND, areas, strict=True)
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
    first.set_clip_on(False)  # add_artist clips it to the axes, which leaves it out of tight_layout's room
    _size_legend(ax, size_handles)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.canvas.draw()
    radii = np.sqrt(sizes) / 2 * fig.dpi / 72
    texts = [bubble_label(r) for _, r in rows.iterrows()]
    place_labels(ax, x, y, radii, texts, bold=list(ours))
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
    samples: list[dict],
    models: list[str],
    labels: dict[str, str],
    dataset: str,
    palette: str = "default",
    *,
    caption: str = "",
) -> plt.Figure:
    """One row per test image: the image, its ground truth (own colour), each model's prediction as an
    error overlay with that image's Dice; a swatch legend below, and ``caption`` under it (:func:`add_caption`).

    Each sample: ``id``, ``image`` (H x W x 3 uint8), ``truth`` (H x W bool), ``preds`` (model -> bool mask),
    ``dice`` (model -> Dice in %).
    """
    c = OVERLAYS[palette]
    n_cols = 2 + len(models)
    fig, axes = plt.subplots(
        len(samples), n_cols, figsize=(1.5 * n_cols, 1.55 * len(samples) + 0.45), dpi=150, squeeze=False
    )
    bottom = add_caption(fig, caption)
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
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, bottom), ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, bottom + 0.3 / fig.get_size_inches()[1], 1, 1))
    return fig


# --------------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------------

NO_LOG = "no training log (runs/<D>/<M>/seed<S>/log.csv) found"
NO_VALIDATION = "no validation split: training loss shown; the last epoch was kept"


def _line_styles(models: list[str], ours: set[str], palette: str) -> dict[str, tuple[str, str]]:
    """model label -> (colour, line style): Ours in :data:`OURS`, the others from the palette, the line style
    changing each time the palette's colours repeat."""
    others = [m for m in models if m not in ours]
    styles = ["-", "--", ":", "-."]
    cycle = len(set(colours(palette, 64)))  # colours before the palette repeats: then the line style changes
    style_of = {}
    for i, (m, c) in enumerate(zip(others, colours(palette, len(others)), strict=True)):
        style_of[m] = (c, styles[(i // cycle) % len(styles)])
    for i, m in enumerate(m for m in models if m in ours):
        style_of[m] = (OURS[palette], styles[i % len(styles)])
    return style_of


def _curve_panel(ax, name: str, lines: dict, style_of: dict, reference: str | None, loss: bool) -> None:
    """One dataset's panel: validation Dice per epoch, or the training loss when it has no validation split."""
    for model, (epochs, values) in lines.items():
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
    # panel label (which dataset, and what is plotted when it is not the validation Dice), not a figure title
    ax.set_title(f"{name}\n({NO_VALIDATION})" if loss else name, fontsize=8 if not loss else 7)
    ax.set_xlabel("epoch", fontsize=7)
    ax.set_ylabel("training loss" if loss else "validation Dice (%)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(True, alpha=0.3)
    if not lines:
        ax.text(0.5, 0.5, "log.csv holds no val_dice\nor train_loss values", ha="center", va="center", fontsize=7)


def val_curves(
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    reference: str | None = None,
    palette: str = "default",
    ours: set[str] | None = None,
    *,
    losses: set[str] = frozenset(),
    caption: str = "",
) -> plt.Figure:
    """One panel per dataset, one line per model: validation Dice (%) against epoch (mean over seeds); for the
    datasets in ``losses`` (no validation split) the training loss instead, the panel's title saying so.

    ``curves``: dataset label -> model label -> (epochs, values); ``reference``: label drawn thicker;
    ``ours``: labels drawn in :data:`OURS` (default: the reference); ``caption``: under the panels
    (:func:`add_caption`). The legend sits beside the top-right panel. Without any curve the figure says that
    no training log was found.
    """
    names = list(curves)
    n = max(len(names), 1)
    n_cols = min(n, 3)
    n_rows = math.ceil(n / n_cols)
    panels_width = 3.6 * n_cols
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(panels_width, 2.8 * n_rows), dpi=150, squeeze=False)
    all_models = list(dict.fromkeys(m for c in curves.values() for m in c))
    style_of = _line_styles(all_models, {reference} if ours is None else set(ours), palette)
    for k, ax in enumerate(axes.flat):
        if k < len(names):
            _curve_panel(ax, names[k], curves[names[k]], style_of, reference, names[k] in losses)
        else:
            ax.axis("off")
    if not names:
        axes[0, 0].text(0.5, 0.5, NO_LOG, ha="center", va="center", fontsize=8)
    handles = [
        Line2D([], [], color=style_of[m][0], linestyle=style_of[m][1], lw=2.2 if m == reference else 1.0, label=m)
        for m in all_models
    ]
    if handles:
        legend = axes[0, -1].legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=6, frameon=False
        )
        fig.canvas.draw()
        # Widen the figure by the legend's width only, so that it sits beside the panels, not across blank space.
        width = legend.get_window_extent().width / fig.dpi
        fig.set_size_inches(panels_width + width + 0.15, fig.get_size_inches()[1])
    bottom = add_caption(fig, caption)
    fig.tight_layout(rect=(0, bottom, 1, 1))
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
