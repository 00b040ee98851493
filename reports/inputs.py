"""Load step of the report stage: every file the reports read, checked, into one :class:`Inputs`.

Per run named by params.yaml (datasets x models x seeds): ``results/<D>/<M>/seed<S>/metrics.json`` and
``per_image.csv`` (required), ``runs/<D>/<M>/seed<S>/train.json`` and ``log.csv`` (optional: without a
log the unconverged flag is not computed, and the report says so); ``results/complexity/<M>.json`` per
model; from ``data/prepared/<D>/`` the test split, the ground-truth foreground of every test image
(lesion-size bins) and, for the qualitative figure, a few test images with each model's saved
prediction. For each ``transfer.pairs`` entry (source, target) and run: ``results/transfer/<source>-<target>/<M>/
seed<S>/{metrics.json,per_image.csv}`` (the transfer stage's), with the source run's training log. A missing or
malformed file raises :class:`ReportError` naming it, before anything is written. With ``report.compare_to``, each
run's ``metrics.json`` as recorded in git at that revision (:mod:`reports.recorded`; never an error).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core.errors import UserError
from datasets.base import DatasetError
from datasets.registry import get_adapter
from engine.metric_names import PAPER_METRICS, REPORT_SCALE
from models.dyglnet_variants import ABLATION_VARIANTS
from models.pretrained import architecture_kwargs
from reports import flags, paper, provenance
from reports.recorded import Recorded, load_recorded
from reports.table import family_rank


class ReportError(UserError):
    """A run named in params.yaml whose outputs are missing or malformed."""


@dataclass
class Run:
    dataset: str
    model: str
    seed: int
    metrics: dict
    per_image: pd.DataFrame  # one row per test image, columns as written by pipeline.evaluate
    train: dict | None = None
    log: pd.DataFrame | None = None


@dataclass
class Inputs:
    profile: str
    datasets: list[str]
    models: list[str]  # params.yaml order
    seeds: list[int]
    names: dict[str, str]  # model key -> display name
    families: dict[str, str]  # model key -> family
    variant_settings: dict[str, str]  # ablation model key -> its settings, as text
    dataset_names: dict[str, str]  # dataset key -> the paper's name
    runs: dict[tuple[str, str, int], Run]
    complexity: dict[str, dict]
    truth_fg: dict[str, pd.Series]  # dataset -> test image id -> ground-truth foreground (% of image)
    image_size: dict[str, int]  # dataset -> side of the prepared images
    samples: list[dict]  # qualitative figure
    qualitative_dataset: str
    reference: str
    palette: str
    provenance: dict[str, str] = field(default_factory=dict)
    recipes: dict[str, dict] = field(default_factory=dict)  # model key -> its paper.RECIPE_KEYS settings
    # model key -> builder, model_kwargs without the weight arguments and the whole recipe, as JSON: two entries
    # with the same setup differ at most in their initialisation
    setups: dict[str, str] = field(default_factory=dict)
    weights: dict[str, dict] = field(default_factory=dict)  # model key -> its pretrained/pretrained_file arguments
    transfer_pairs: list[tuple[str, str]] = field(default_factory=list)  # (source, target), params.yaml order
    # (source, target, model, seed) -> the transfer stage's run; its log and train.json are the source run's
    transfer_runs: dict[tuple[str, str, str, int], Run] = field(default_factory=dict)
    # model key -> {recipe key: "steps 60 vs 20"}: where its runs' recorded recipe differs from the shared train:
    # section (reports.flags, the (B) flag); models that follow it are absent
    recipe_diffs: dict[str, dict[str, str]] = field(default_factory=dict)
    overrides: dict[str, dict] = field(default_factory=dict)  # model key -> its models: entry's train: overrides
    selection: dict[str, list[str]] = field(default_factory=dict)  # dataset -> the selection rules its runs used
    # the runs' metrics.json as recorded in git at report.compare_to (reports.recorded); None: not compared
    recorded: Recorded | None = None

    def unequal(self, m: str, ignore: tuple[str, ...] = ()) -> dict[str, str]:
        """The (B) differences of model ``m``'s recipe, less the keys ``ignore`` (a table's purpose)."""
        return {k: v for k, v in self.recipe_diffs.get(m, {}).items() if k not in ignore}

    def main_models(self) -> list[str]:
        """The non-ablation models in the paper's row order (family, then params.yaml order)."""
        return self.ordered([m for m in self.models if self.families[m] != "Ablation"])

    def variants(self) -> list[str]:
        return [m for m in self.models if self.families[m] == "Ablation"]

    def ordered(self, models: list[str]) -> list[str]:
        return sorted(models, key=lambda m: (family_rank(self.families[m]), self.models.index(m)))


def run_dir(results: Path, dataset: str, model: str, seed: int) -> Path:
    return results / dataset / model / f"seed{seed}"


def dataset_label(key: str) -> str:
    """The paper's name of a dataset (``Kvasir-SEG``), or the key for datasets outside the registry."""
    try:
        return get_adapter(key).display_name or key
    except DatasetError:
        return key


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ReportError(f"{path}: missing") from err
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: unreadable JSON: {err}") from err
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_evaluation(folder: Path, how: str) -> tuple[dict, pd.DataFrame]:
    """(metrics.json, per_image.csv) of an evaluation folder, checked; ``how``: what writes them, for the error."""
    metrics_file, per_image_file = folder / "metrics.json", folder / "per_image.csv"
    for f in (metrics_file, per_image_file):
        if not f.is_file():
            raise ReportError(f"{f}: missing; {how}")
    metrics = _read_json(metrics_file)
    for name in (*PAPER_METRICS, "hd95"):
        if not isinstance(metrics.get(name), dict) or "mean" not in metrics[name]:
            raise ReportError(f"{metrics_file}: no mean for metric {name!r}")
    try:
        table = pd.read_csv(per_image_file, dtype={"id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ReportError(f"{per_image_file}: unreadable CSV: {err}") from err
    for column in ("id", "dice"):
        if column not in table.columns:
            raise ReportError(f"{per_image_file}: no column {column!r} (has {', '.join(table.columns)})")
    if metrics.get("per_image_units") != "as units":  # written before per_image.csv held the reported units
        for name, scale in REPORT_SCALE.items():
            if name in table.columns and scale != 1.0:
                table[name] = table[name] * scale
    return metrics, table


def load_run(results: Path, runs: Path, d: str, m: str, s: int) -> Run:
    metrics, table = read_evaluation(
        run_dir(results, d, m, s), f"run `dvc repro` (or pipeline.evaluate) for {d}/{m}/seed{s}"
    )
    run_folder = run_dir(runs, d, m, s)
    train = _read_json(run_folder / "train.json") if (run_folder / "train.json").is_file() else None
    log = None
    if (run_folder / "log.csv").is_file():
        try:
            log = pd.read_csv(run_folder / "log.csv")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ReportError(f"{run_folder / 'log.csv'}: unreadable CSV: {err}") from err
        if "val_dice" not in log.columns:
            raise ReportError(f"{run_folder / 'log.csv'}: no column 'val_dice'")
    return Run(d, m, s, metrics, table, train, log)


def transfer_dir(results: Path, source: str, target: str) -> Path:
    """``results/transfer/<source>-<target>``: the transfer stage's outputs of one pair (then ``<M>/seed<S>/``)."""
    return results / "transfer" / f"{source}-{target}"


def load_transfer_run(results: Path, source: str, target: str, own: Run) -> Run:
    """The transfer stage's run of ``own`` (the model's run on ``source``) on ``target``'s test split."""
    folder = transfer_dir(results, source, target) / own.model / f"seed{own.seed}"
    how = f"run `dvc repro` (stage transfer) for {source} -> {target}, {own.model}, seed {own.seed}"
    metrics, table = read_evaluation(folder, how)
    return Run(f"{source}->{target}", own.model, own.seed, metrics, table, own.train, own.log)


def load_complexity(results: Path, model: str) -> dict:
    path = results / "complexity" / f"{model}.json"
    if not path.is_file():
        raise ReportError(f"{path}: missing; run the complexity stage for {model}")
    row = _read_json(path)
    for key in ("params", "gflops_fvcore"):
        if not isinstance(row.get(key), int | float):
            raise ReportError(f"{path}: no number for {key!r}")
    return row


def load_truth(prepared: Path, dataset: str) -> tuple[pd.Series, int, list[str]]:
    """(test id -> ground-truth foreground %, image side, test ids) from the prepared dataset."""
    folder = prepared / dataset
    for name in ("ids.json", "split.json", "masks.npy"):
        if not (folder / name).is_file():
            raise ReportError(f"{folder / name}: missing; run the prepare stage for {dataset}")
    ids = json.loads((folder / "ids.json").read_text())
    split = json.loads((folder / "split.json").read_text())
    if "test" not in split:
        raise ReportError(f"{folder / 'split.json'}: no 'test' split")
    masks = np.load(folder / "masks.npy", mmap_mode="r")
    row_of = {k: i for i, k in enumerate(ids)}
    test = list(split["test"])
    unknown = [t for t in test if t not in row_of]
    if unknown:
        raise ReportError(f"{folder / 'split.json'}: test ids not in ids.json: {unknown[:3]}")
    fg = [float(np.asarray(masks[row_of[t]]).astype(bool).mean() * 100) for t in test]
    return pd.Series(fg, index=pd.Index(test, name="id"), name="true_fg"), int(masks.shape[-1]), test


def load_samples(prepared: Path, results: Path, dataset: str, models: list[str], *, seed: int, count: int, runs):
    """Evenly spaced test images with ground truth, each model's saved prediction and its per-image Dice."""
    folder = prepared / dataset
    ids = json.loads((folder / "ids.json").read_text())
    test = json.loads((folder / "split.json").read_text())["test"]
    picks = [test[i] for i in np.linspace(0, len(test) - 1, num=min(count, len(test))).round().astype(int)]
    images, masks = np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "masks.npy", mmap_mode="r")
    row_of = {k: i for i, k in enumerate(ids)}
    samples = []
    for image_id in dict.fromkeys(picks):
        image, truth = np.asarray(images[row_of[image_id]]), np.asarray(masks[row_of[image_id]]) > 0
        preds, dice = {}, {}
        for m in models:
            f = run_dir(results, dataset, m, seed) / "pred" / f"{image_id}.png"
            pred = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if pred is None:
                raise ReportError(f"{f}: missing or unreadable prediction")
            if pred.shape != truth.shape:
                pred = cv2.resize(pred, truth.shape[::-1], interpolation=cv2.INTER_NEAREST)
            preds[m] = pred > 127
            table = runs[(dataset, m, seed)].per_image
            hit = table.loc[table["id"] == image_id, "dice"]
            dice[m] = float(hit.iloc[0]) if len(hit) else float("nan")
        samples.append({"id": image_id, "image": image, "truth": truth, "preds": preds, "dice": dice})
    return samples


def variant_settings(builder: str) -> str:
    """The settings of an ablation variant (``models.dyglnet_variants``) as text; empty for other models."""
    return ", ".join(f"{k}={v!r}" for k, v in ABLATION_VARIANTS.get(builder, {}).items())


WEIGHT_ARGUMENTS = ("pretrained", "pretrained_file")


def setup_key(spec) -> str:
    """What a run is of, its initialisation aside: builder, architecture arguments, recipe (canonical JSON)."""
    setup = {
        "builder": spec.builder,
        "model_kwargs": architecture_kwargs(spec.model_kwargs),
        "recipe": spec.recipe.model_dump(),
    }
    return json.dumps(setup, sort_keys=True, default=str)


def run_recipe(run: Run, spec, augment: dict) -> dict:
    """The (B) flag's view of a run's recipe (:func:`reports.flags.comparable_recipe`), from its ``train.json``;
    for a run recorded before train.json held its recipe, the recipe params.yaml gives its model."""
    record = (run.train or {}).get("recipe")
    if isinstance(record, dict):
        return flags.comparable_recipe(record, record.get("augment", {}), bool((run.train or {}).get("weights")))
    pretrained = any(spec.model_kwargs.get(k) for k in WEIGHT_ARGUMENTS)
    return flags.comparable_recipe(spec.recipe.model_dump(), augment, pretrained)


def recipe_diffs(params, specs: dict, runs: dict) -> dict[str, dict[str, str]]:
    """model key -> the (B) differences of its runs from the shared ``train:`` section (absent when none)."""
    augment = params.augment.model_dump()
    shared = flags.comparable_recipe(params.train.model_dump(), augment, pretrained=False)
    out: dict[str, dict[str, str]] = {}
    for (_, m, _), run in sorted(runs.items(), key=lambda kv: kv[0]):
        for key, text in flags.recipe_differences(run_recipe(run, specs[m], augment), shared).items():
            known = out.setdefault(m, {}).get(key)
            out[m][key] = text if known in (None, text) else f"{known}; {text}"
    return out


def load_inputs(params, results: Path, runs: Path, prepared: Path, root: Path) -> Inputs:
    """Read and check everything the reports need (see the module docstring)."""
    datasets, models, seeds = list(params.datasets), list(params.models), list(params.seeds)
    if not datasets or not models:
        raise ReportError("params.yaml must list at least one dataset and one model")
    specs = {m: params.model_spec(m) for m in models}
    reference = params.report.reference_model
    if reference not in models:
        raise ReportError(f"params.yaml: report.reference_model {reference!r} is not one of the models run")
    loaded = {(d, m, s): load_run(results, runs, d, m, s) for d in datasets for m in models for s in seeds}
    truth, sizes = {}, {}
    for d in datasets:
        truth[d], sizes[d], _ = load_truth(prepared, d)
    families = {m: specs[m].family for m in models}
    settings = {}
    for m in models:
        if families[m] == "Ablation":
            text = variant_settings(specs[m].builder)
            extra = ", ".join(f"{k}={v!r}" for k, v in specs[m].model_kwargs.items())
            settings[m] = ", ".join(p for p in (text, extra) if p)
    qual_dataset = params.report.qualitative_dataset or datasets[0]
    if qual_dataset not in datasets:
        raise ReportError(f"params.yaml: report.qualitative_dataset {qual_dataset!r} is not one of the datasets run")
    main = sorted(
        [m for m in models if families[m] != "Ablation"], key=lambda m: (family_rank(families[m]), models.index(m))
    )
    samples = load_samples(
        prepared, results, qual_dataset, main, seed=seeds[0], count=params.report.qualitative_images, runs=loaded
    )
    pairs = [(source, target) for source, target in params.transfer.pairs]
    runs_of = [(m, s) for m in models for s in seeds]
    transfer_runs = {
        (a, b, m, s): load_transfer_run(results, a, b, loaded[(a, m, s)]) for a, b in pairs for m, s in runs_of
    }
    inputs = Inputs(
        profile=params.profile,
        datasets=datasets,
        models=models,
        seeds=seeds,
        names={m: specs[m].display_name for m in models},
        families=families,
        variant_settings=settings,
        dataset_names={d: dataset_label(d) for d in datasets},
        runs=loaded,
        complexity={m: load_complexity(results, m) for m in models},
        truth_fg=truth,
        image_size=sizes,
        samples=samples,
        qualitative_dataset=qual_dataset,
        reference=reference,
        palette=params.report.palette,
        recipes={m: paper.recipe_of(specs[m].recipe) for m in models},
        setups={m: setup_key(specs[m]) for m in models},
        weights={m: {k: v for k, v in specs[m].model_kwargs.items() if k in WEIGHT_ARGUMENTS} for m in models},
        transfer_pairs=pairs,
        transfer_runs=transfer_runs,
        recipe_diffs=recipe_diffs(params, specs, loaded),
        overrides={m: params.models[m].overrides if params.models.get(m) else {} for m in models},
        selection={
            d: sorted({(loaded[(d, m, s)].train or {}).get("selection", "not recorded") for m in models for s in seeds})
            for d in datasets
        },
    )
    if params.report.compare_to:
        inputs.recorded = load_recorded(root, results, list(loaded), params.report.compare_to)
    split_datasets = datasets + list(params.transfer.test_only)
    train_json = {k: r.train for k, r in loaded.items()}
    inputs.provenance = provenance.collect(root, params, split_datasets, models, prepared, train_json)
    return inputs
