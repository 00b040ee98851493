"""A small but complete pipeline output tree for the report stage, generated (no training).

``make_tree(root, datasets, models, seeds)`` writes, as the stages would:

- ``params.yaml`` (profile, datasets, models, seeds, train (``train=`` overrides keys), report);
- ``data/prepared/<D>/``: images.npy, masks.npy (one disc per image, radii spread so that the lesion-size
  bins are populated), ids.json, split.json (every image in test);
- ``results/<D>/<M>/seed<S>/``: pred/<id>.png, per_image.csv (every key of ``image_metrics`` computed on
  those predictions), metrics.json (``summarize`` of each metric, percent for the overlap metrics);
- ``results/complexity/<M>.json`` (with a latency median and interquartile range, all measured on one
  ``machine``; GFLOPs at 224 px and at the training size);
- ``runs/<D>/<M>/seed<S>/``: train.json (``steps``, ``device_name``; ``weights`` for the models given in
  ``weights=``, as pipeline.train records them, and none for the others, as runs from before that record),
  log.csv (``val_dice`` in percent; empty with ``validation=False``, as without a validation split, and
  ``train_loss``).
- with ``transfer=[(source, target), ...]``: ``params.yaml`` ``transfer:`` (a target outside ``datasets`` is
  ``test_only`` and gets its ``data/prepared/<target>/``), and ``results/transfer/<source>-<target>/<M>/seed<S>/``
  as the transfer stage writes it (predictions one pixel further off than in-domain; ``TRANSFER_QUALITY``
  overrides a model's).

Each model's predictions are the ground truth distorted by a model-specific amount (``QUALITY``, updated by
``qualities=``); a model whose quality is ``"degenerate"`` predicts a tiny blob, and ``"rising"`` models have a
validation curve still climbing at the end (unconverged).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from engine.metric_names import ALL_METRICS, REPORT_SCALE
from engine.metrics import image_metrics
from engine.params import load_params
from engine.stats import summarize

PAPER_MODELS = [
    "unet", "attention_unet", "unetpp", "dcsaunet", "m2snet", "cmunext_l", "missformer", "swinunet", "hiformer_b",
    "h2former", "fatnet", "befunet", "dyglnet",
]  # fmt: skip
# model -> (pixel shift of the prediction, dilation (+) / erosion (-) radius) or a keyword
QUALITY = {
    "dyglnet": (0, 0),
    "unet": (1, -1),
    "unetpp": (2, 1),
    "attention_unet": "degenerate",
    "dyglnet_wo_sa": (1, 0),
    "dyglnet_w_tconv": (0, 1),
}


# model -> its prediction quality on a transfer target (default: its QUALITY, shifted one more pixel)
TRANSFER_QUALITY = {"unetpp": "degenerate"}


def _discs(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    radii = np.linspace(size * 0.06, size * 0.3, n)
    rng.shuffle(radii)
    for i, r in enumerate(radii):
        cy, cx = rng.uniform(size * 0.35, size * 0.65, 2)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    return masks


def _predict(truth: np.ndarray, quality, rng: np.random.Generator) -> np.ndarray:
    if quality == "degenerate":
        out = np.zeros_like(truth)
        ys, xs = np.nonzero(truth)
        if len(ys):
            out[ys[0], xs[0]] = 1
        return out
    shift, grow = quality
    pred = np.roll(truth, shift + int(rng.integers(0, 2)), axis=1)
    if grow:
        kernel = np.ones((2 * abs(grow) + 1, 2 * abs(grow) + 1), np.uint8)
        pred = cv2.dilate(pred, kernel) if grow > 0 else cv2.erode(pred, kernel)
    return pred


def _write_evaluation(run: Path, m: str, ids: list[str], masks: np.ndarray, preds: np.ndarray) -> None:
    """pred/, per_image.csv and metrics.json of one evaluation, as pipeline.evaluate writes them."""
    (run / "pred").mkdir(parents=True)
    for i, pred in zip(ids, preds, strict=True):
        cv2.imwrite(str(run / "pred" / f"{i}.png"), pred * 255)
    values = image_metrics(preds[:, None].astype(bool), masks[:, None].astype(np.float32))
    values = {k: np.asarray(values[k]) * REPORT_SCALE[k] for k in ALL_METRICS}  # the reported units, as written
    pd.DataFrame({"id": ids, **values}).to_csv(run / "per_image.csv", index=False)
    summary = {k: summarize(values[k], seed=0) for k in ALL_METRICS}
    summary.update({"model": m, "n_images": len(ids), "split": "test", "per_image_units": "as units"})
    (run / "metrics.json").write_text(json.dumps(summary))


def make_tree(
    root: Path,
    datasets=("kvasir",),
    models=("dyglnet", "unet", "unetpp", "attention_unet", "dyglnet_wo_sa"),
    seeds=(42,),
    n: int = 12,
    size: int = 32,
    extra_models: dict | None = None,
    rising: tuple[str, ...] = ("unet",),
    with_logs: bool = True,
    validation: bool = True,
    latency: bool = True,
    palette: str = "default",
    train: dict | None = None,
    qualities: dict | None = None,
    weights: dict[str, dict] | None = None,
    transfer: tuple[tuple[str, str], ...] = (),
) -> Path:
    """Write the tree under ``root``; returns ``root`` (see the module docstring)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    entries = {m: {} for m in models}
    entries.update(extra_models or {})
    params = {
        "profile": "test",
        "datasets": {d: {"raw": f"data/raw/{d}"} for d in datasets},
        "models": entries,
        "seeds": list(seeds),
        "train": {  # train={"steps": 20, "epochs": None}: a key given None is left out
            k: v
            for k, v in {"epochs": 8, "img_size": size, "batch_size": 4, "lr": 0.001, **(train or {})}.items()
            if v is not None
        },
        "report": {"reference_model": "dyglnet", "qualitative_images": 3, "palette": palette},
    }
    test_only = sorted({b for _, b in transfer} - set(datasets))
    if transfer:
        params["transfer"] = {
            "pairs": [list(p) for p in transfer],
            "test_only": {d: {"raw": f"data/raw/{d}"} for d in test_only},
        }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    specs = load_params(root / "params.yaml")  # each run's train.json records its recipe, as pipeline.train does
    truth = {}
    for d in [*datasets, *test_only]:
        prepared = root / "data" / "prepared" / d
        prepared.mkdir(parents=True)
        masks = _discs(n, size, rng)
        images = (rng.integers(60, 120, (n, size, size, 3)) + masks[..., None] * 80).astype(np.uint8)
        ids = [f"{d}_{i:02d}" for i in range(n)]
        truth[d] = (ids, masks)
        np.save(prepared / "images.npy", images)
        np.save(prepared / "masks.npy", masks)
        (prepared / "ids.json").write_text(json.dumps(ids))
        (prepared / "split.json").write_text(json.dumps({"train": [], "val": [], "test": ids}))
        if d in test_only:
            continue
        for m in entries:
            quality = {**QUALITY, **(qualities or {})}.get(m, (1 + len(m) % 3, (len(m) % 3) - 1))
            for s in seeds:
                run = root / "results" / d / m / f"seed{s}"
                _write_evaluation(run, m, ids, masks, np.stack([_predict(t, quality, rng) for t in masks]))
                train_dir = root / "runs" / d / m / f"seed{s}"
                train_dir.mkdir(parents=True)
                record = {"model": m, "epochs": 8, "steps": 24, "device_name": "Test GPU 9000"}
                record["recipe"] = {**specs.model_spec(m).recipe.model_dump(), "augment": specs.augment.model_dump()}
                if weights is not None and m in weights:
                    record["weights"] = weights[m]
                (train_dir / "train.json").write_text(json.dumps(record))
                if with_logs:
                    epochs = np.arange(1, 9)
                    curve = np.minimum(80.0, 20.0 * epochs)  # converged: flat over the last half
                    if m in rising:
                        curve = 10.0 * epochs
                    if not validation:  # train.selection: last without a validation split: an empty column
                        curve = np.full(len(epochs), np.nan)
                    pd.DataFrame({"epoch": epochs, "val_dice": curve, "train_loss": 1 / epochs}).to_csv(
                        train_dir / "log.csv", index=False
                    )
    for source, target in transfer:
        ids, masks = truth[target]
        for m in entries:
            quality = QUALITY.get(m, (1 + len(m) % 3, (len(m) % 3) - 1))
            if quality != "degenerate":
                quality = (quality[0] + 1, quality[1])
            quality = TRANSFER_QUALITY.get(m, quality)
            for s in seeds:
                run = root / "results" / "transfer" / f"{source}-{target}" / m / f"seed{s}"
                _write_evaluation(run, m, ids, masks, np.stack([_predict(t, quality, rng) for t in masks]))
    cx = root / "results" / "complexity"
    cx.mkdir(parents=True, exist_ok=True)
    for k, m in enumerate(entries):
        row = {
            "model": m,
            "params": 1_000_000 * (3 + 2 * k),
            "gflops_fvcore": 2.5 + 3.1 * k,
            "input_size": 224,
            "gflops_fvcore_train_size": round((2.5 + 3.1 * k) * (size / 224) ** 2, 4),
            "train_size": size,
            "cpu_latency_ms": 10.0 + k,
            "cpu_threads": 2,
            "gpu_latency_ms": None,
            "gpu": None,
            "machine": {"cpu": "Test CPU 42", "gpu": None, "torch": "2.4.0", "threads": 2, "dtype": "float32"},
        }
        if latency:
            row.update(
                {
                    "cpu_latency_p10_ms": 9.5 + k,
                    "cpu_latency_p90_ms": 10.8 + k,
                    "cpu_latency_iqr_ms": 0.6,
                    "latency_repeats": 20,
                }
            )
        (cx / f"{m}.json").write_text(json.dumps(row))
    return root
