"""Overlay colours shared by the qualitative figure (``reports.figures``) and ``pipeline.predict --overlay``.

RGB 0-255, per palette (params.yaml ``report.palette``). The qualitative figure paints the ground truth
(``gt``) and each prediction's correct lesion pixels (``tp``), over-segmented (``fp``) and under-segmented
(``fn``) pixels; a prediction without a ground truth to compare with (``pipeline.predict``) is painted in
``pred``, a colour none of the others uses, so that it is never read as a verdict. Kept free of heavy
imports so that predict can read it without matplotlib.
"""

from __future__ import annotations

OVERLAYS = {
    "default": {
        "tp": (255, 220, 0),
        "fp": (230, 30, 30),
        "fn": (30, 200, 30),
        "gt": (0, 150, 255),
        "pred": (230, 0, 230),
    },
    "colorblind": {
        "tp": (240, 228, 66),
        "fp": (213, 94, 0),
        "fn": (0, 114, 178),
        "gt": (204, 121, 167),
        "pred": (0, 158, 115),
    },
}
OVERLAY_LABELS = {
    "tp": "correct lesion pixels",
    "fp": "over-segmented",
    "fn": "under-segmented",
    "gt": "ground truth",
    "pred": "predicted lesion (no ground truth)",
}
