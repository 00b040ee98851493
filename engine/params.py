"""``params.yaml``: one typed schema, validated whenever a stage starts.

    params = load_params()                 # the whole file, validated (raises ParamsError)
    spec = params.model_spec("unet")       # one `models:` entry resolved: builder, labels, recipe

Every section is a pydantic model in strict mode, so ``lr: 1e-3`` (which YAML reads as a string) or
``epochs: three`` is refused with the entry's path: ``params.yaml: train.lr: expected a number, got
'1e-3'``. Unknown keys are refused too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.profiles import ParamsError, merge_profile, params_path, read_yaml_mapping, resolve_profile  # noqa: F401


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)

    def fill(self, args: Any) -> None:
        """Set every attribute of ``args`` (an argparse namespace) that is None to this section's value of
        the same name: the command line overrides params.yaml, which is read only after parsing (so that
        ``--help`` works whatever params.yaml holds)."""
        for name in type(self).model_fields:
            if getattr(args, name, ...) is None:
                setattr(args, name, getattr(self, name))


class DatasetEntry(Section):
    raw: str
    """Folder of the dataset as downloaded (the adapter's layout; see the Datasets reference)."""

    @field_validator("raw")
    @classmethod
    def _quotable(cls, raw: str) -> str:
        # dvc.yaml passes the folder to the shell in single quotes: any other character is fine
        if not raw.strip():
            raise ValueError("empty folder name")
        if "'" in raw:
            raise ValueError(f"{raw!r}: the stage's shell cannot take a folder name with a single quote; rename it")
        return raw


class GeneratedDataset(Section):
    """One ``synthetic:`` entry: a dataset the generator (``datasets/synthetic.py``) writes to ``data/raw/<key>``
    (stage ``synthesize@<key>``). A profile that uses no generated dataset has ``synthetic: {}`` and no such stage.

    synthetic:
      synthetic: {domain: base, n: 500, size: 96, seed: 42}      # dataset `synthetic`
      shifted: {domain: shifted, n: 500, size: 96, seed: 43}     # its second "camera and stain"
    """

    domain: Literal["base", "shifted"] = "base"
    """Which look the generator draws: `base`, or `shifted` (another camera and stain, same scenes)."""
    n: int = Field(500, ge=10)
    """Number of image/mask pairs to generate."""
    size: int = Field(96, ge=16)
    """Side of the generated square images, in pixels."""
    seed: int = 42
    """Seed of the generator: the same seed gives the same images."""


class PrepareParams(Section):
    size: int = Field(224, ge=16)
    """Side, in pixels, every image and mask is resized to once (equals `train.img_size`)."""
    seed: int = 42
    """Seed of the 8:1:1 split (the paper's: 42)."""
    split_by_patient: bool = False
    """Keep each patient (Brain-MRI) or slide (TNBC) in one part of the split."""


class TrainParams(Section):
    """The training recipe (paper section 4.1); ``models.<name>:`` may override any key for one model.

    The budget is ``steps`` (optimiser steps) when set, else ``epochs``: with ``steps`` the epochs follow from the
    training split and the batch (:func:`engine.recipe.epochs_for_steps`), so every model gets the same number of
    steps on any dataset. A ``models.<name>:`` entry that overrides ``epochs`` alone trains by epochs.
    """

    steps: int | None = Field(None, ge=1)
    """Optimiser steps of a run, the same for every model; null trains for `epochs` instead."""
    epochs: int = Field(130, ge=1)
    """Epochs of a run when `steps` is null (the paper: 130)."""
    batch_size: int = Field(16, ge=2)
    """Images per optimiser step."""
    img_size: int = Field(224, ge=16)
    """Training image side in pixels (equals `prepare.size`)."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate of AdamW."""
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999], min_length=2, max_length=2)
    """AdamW's (beta1, beta2)."""
    weight_decay: float = Field(3e-5, ge=0)
    """AdamW's decoupled weight decay."""
    warmup_epochs: float = Field(10, ge=0)
    """Linear warm-up, in epochs; a run shorter than `reference_epochs` warms up for the same fraction of its length."""
    reference_epochs: int = Field(130, ge=1)
    """The run length `warmup_epochs` is written for (the paper's 130 epochs)."""
    poly_power: float = Field(0.9, ge=0)
    """Exponent of the polynomial learning-rate decay after warm-up."""
    grad_clip: float = Field(1.0, gt=0)
    """Largest gradient norm; larger gradients are scaled down to it."""
    amp: bool = True
    """Mixed precision: fp16 autocast with a GradScaler on CUDA, bf16 on a CPU with native bf16, else fp32."""
    bce_weight: float = Field(0.5, ge=0)
    """Weight of the binary cross-entropy term of the loss."""
    dice_weight: float = Field(0.5, ge=0)
    """Weight of the soft Dice term of the loss."""
    dice_smooth: float = Field(1.0, ge=0)
    """Smoothing constant of the soft Dice loss."""
    num_workers: int = Field(2, ge=0)
    """DataLoader worker processes (0: load in the training process)."""
    selection: Literal["last", "carve"] = "last"
    """Without a validation split (ISIC2016, TNBC): `last` keeps the last epoch's weights; `carve` moves a tenth of
    the training images to validation and keeps the best epoch on it. A validation split is always used when present."""
    sync_bn: bool = False
    """Synchronise BatchNorm statistics across processes under torchrun."""
    device: str = "auto"
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`."""
    compile: bool = False
    """torch.compile the model for training."""
    channels_last: bool = False
    """Run the model in channels-last (NHWC) memory format."""
    checkpoint_every: int = Field(5, ge=1)
    """Epochs between resume checkpoints (resume.pt); one is also written at the end."""

    # Settings that change how, not what, a run computes: a run may resume under other values of these.
    # num_workers is one: each sample's augmentation is seeded by (seed, epoch, sample), whatever the workers.
    # (amp is recorded as the precision the run actually used.)
    EXECUTION_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"amp", "num_workers", "device", "compile", "channels_last", "checkpoint_every"}
    )

    def with_overrides(self, overrides: dict[str, Any]) -> TrainParams:
        """This recipe with a ``models.<name>:`` entry's ``overrides``; overriding ``epochs`` alone switches the
        budget from steps to epochs."""
        update = dict(overrides)
        if "epochs" in update and "steps" not in update:
            update["steps"] = None
        return self.model_copy(update=update)


def check_one_budget(section: Any, where: str) -> None:
    """A recipe mapping that sets both ``steps`` and ``epochs`` is refused: the budget is one of them."""
    if isinstance(section, dict) and section.get("steps") is not None and section.get("epochs") is not None:
        raise ValueError(f"{where}: steps {section['steps']} and epochs {section['epochs']} both set; keep one")


class TrainConfig(TrainParams):
    """One training run: the recipe (every ``train:`` key, typed and checked by the same rules as params.yaml)
    plus what the run is of. Saved in every checkpoint as ``model_dump()``."""

    data: str  # the prepared dataset folder
    model: str  # the run's name: a ``models:`` key of params.yaml, or a registered model
    out: str  # the run folder
    builder: str = ""  # the registered model to build; defaults to ``model``
    seed: int = 42
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    augment: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _builder_defaults_to_model(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("builder"):
            values = {**values, "builder": values.get("model", "")}
        return values

    def recipe(self) -> dict[str, Any]:
        """The settings that change what the run computes (a resume.pt must have been saved with the same)."""
        about = {"data", "model", "out", "builder", "model_kwargs"}  # checked separately by the resume protocol
        return {k: v for k, v in self.model_dump().items() if k not in about | self.EXECUTION_KEYS}

    @classmethod
    def from_params(cls, params: Params | None = None, **given: Any) -> TrainConfig:
        """params.yaml's ``train:`` <- ``models.<model>:`` <- ``given`` (None = not given); ``given`` needs
        ``data``, ``model`` and ``out``. ``params`` defaults to :func:`load_params`. A value the recipe's rules
        refuse is a :class:`ParamsError`."""
        params = params or load_params()
        spec = params.model_spec(given["model"])  # UnknownModelError for a name nobody registered
        given = {k: v for k, v in given.items() if v is not None}
        values = spec.recipe.with_overrides({k: v for k, v in given.items() if k in TrainParams.model_fields})
        values = {**values.model_dump(), **given}
        values.update(builder=spec.builder, model_kwargs=spec.model_kwargs, augment=params.augment.model_dump())
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise ParamsError(f"invalid training setting: {describe(err)}") from err


class AugmentParams(Section):
    crop_scale: list[float] = Field(default_factory=lambda: [0.5, 1.0], min_length=2, max_length=2)
    """Random resized crop: range of the crop's area as a fraction of the image."""
    crop_ratio: list[float] = Field(default_factory=lambda: [0.75, 4 / 3], min_length=2, max_length=2)
    """Random resized crop: range of the crop's aspect ratio."""
    hflip_p: float = Field(0.5, ge=0, le=1)
    """Probability of a horizontal flip."""
    vflip_p: float = Field(0.5, ge=0, le=1)
    """Probability of a vertical flip."""
    rotate_limit: float = Field(15, ge=0)
    """Largest rotation, in degrees, either way."""
    rotate_p: float = Field(0.6, ge=0, le=1)
    """Probability of a rotation."""
    elastic_p: float = Field(0.3, ge=0, le=1)
    """Probability of an elastic deformation."""
    elastic_alpha: float = Field(300.0, ge=0)
    """Strength of the elastic deformation, at `elastic_reference_size`."""
    elastic_sigma: float = Field(10.0, gt=0)
    """Smoothness (Gaussian sigma) of the elastic deformation, at `elastic_reference_size`."""
    elastic_reference_size: int = Field(224, ge=1)
    """The image side `elastic_alpha` and `elastic_sigma` are given for; scaled to `train.img_size`."""
    brightness_limit: float = Field(0.2, ge=0)
    """Largest relative brightness change."""
    contrast_limit: float = Field(0.2, ge=0)
    """Largest relative contrast change."""
    brightness_contrast_p: float = Field(0.2, ge=0, le=1)
    """Probability of a brightness/contrast change."""
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406], min_length=3, max_length=3)
    """Per-channel mean subtracted after scaling to [0, 1] (ImageNet's)."""
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225], min_length=3, max_length=3)
    """Per-channel standard deviation divided by after the mean (ImageNet's)."""


class EvaluateParams(Section):
    split: Literal["train", "val", "test"] = "test"
    """The split the evaluate stage measures."""
    batch_size: int = Field(16, ge=1)
    """Images per inference batch."""
    bootstrap: int = Field(1000, ge=0)
    """Bootstrap resamples of the per-image metrics for the confidence intervals (0: none)."""
    compile: bool = False
    """torch.compile the model for inference."""
    device: str = "auto"
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`."""


class ComplexityParams(Section):
    size: int = Field(224, ge=16)
    """Input side, in pixels, at which parameters, FLOPs and latency are measured (the paper: 224)."""
    repeats: int = Field(20, ge=1)
    """Timed forward passes per latency measurement."""
    warmup: int = Field(3, ge=0)
    """Untimed forward passes before the timed ones."""


class TransferParams(Section):
    """``transfer:``: cross-dataset evaluation (stage ``transfer``), no training.

    transfer:
      pairs:                   # [source, target]: each model trained on source, tested on target's test split
        - [kvasir, cvc]
        - [cvc, kvasir]
      test_only:               # targets that are tested on but never trained on (stage prepare_test_only)
        shifted: {raw: data/raw/shifted}

    A source must be one of ``datasets:`` (its checkpoints are trained there); a target one of ``datasets:`` or
    ``test_only:``. Stage names number the pairs in this order (DVC names a matrix entry that is a list by its
    index), so add a pair at the end: the stages of the pairs before it keep their names.
    """

    pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(default_factory=list)
    """`[source, target]` pairs: each model trained on source is tested on target's test split."""
    test_only: dict[str, DatasetEntry] = Field(default_factory=dict)
    """Datasets that are only tested on, never trained on (stage `prepare_test_only`)."""

    @field_validator("pairs", mode="before")
    @classmethod
    def _two_names(cls, pairs: Any) -> Any:
        for i, pair in enumerate(pairs if isinstance(pairs, list) else []):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(n, str) for n in pair)):
                raise ValueError(f"entry {i}: expected a [source, target] list of two dataset names, got {pair!r}")
        return pairs


class ReportParams(Section):
    reference_model: str = "dyglnet"
    """The model the comparison and significance tests are against (a `models:` key)."""
    qualitative_dataset: str | None = None
    """Dataset of the qualitative figure; null: the first of `datasets:`."""
    qualitative_images: int = Field(4, ge=1)
    """Images in the qualitative figure."""
    palette: Literal["default", "colorblind"] = "default"
    """Figure colours: `default`, or `colorblind` (Okabe-Ito)."""
    # true: refuse to report runs whose recipe differs from the shared train: section (the (B) flag)
    fail_on_unequal: bool = False
    """Refuse to report runs whose recipe differs from the shared `train:` section (the (B) flag)."""
    # git revision whose committed results/<D>/<M>/seed<S>/metrics.json reproduction.md compares this run's with;
    # null: no comparison
    compare_to: str | None = "HEAD"
    """Git revision whose committed per-run metrics reproduction.md compares with; null: no comparison."""


class SlurmSettings(Section):
    """``grid.slurm``: the sbatch options of every job (one job = one train -> evaluate chain)."""

    partition: str | None = None
    """sbatch --partition; null: the cluster's default."""
    time_min: int = Field(720, ge=1)
    """sbatch --time of each job, in minutes."""
    gpus_per_job: int = Field(1, ge=0)
    """GPUs per job (sbatch --gpus-per-node)."""
    cpus_per_job: int = Field(8, ge=1)
    """CPU cores per job (sbatch --cpus-per-task)."""
    mem_gb: float | None = Field(64.0, gt=0)
    """Memory per job in GB; null: the cluster's default."""
    account: str | None = None
    """sbatch --account; null: none."""
    qos: str | None = None
    """sbatch --qos; null: none."""
    constraint: str | None = None
    """sbatch --constraint; null: none."""
    setup: list[str] = Field(default_factory=list)
    """Shell lines run before each job, e.g. `module load cuda`."""
    sbatch: dict[str, str | int] = Field(default_factory=dict)
    """Any other sbatch option, e.g. `{mail-type: FAIL}`."""
    # SIGUSR2 this many seconds before the time limit: the training saves resume.pt, submitit requeues the job
    signal_delay_s: int = Field(120, ge=10)
    """Seconds before the time limit at which SIGUSR2 makes the training save resume.pt and requeue."""


class GridSettings(Section):
    """The ``grid:`` section of params.yaml: how ``python -m pipeline.grid`` runs the stages.

    grid:
      executor: local          # local | slurm | debug
      jobs: null               # jobs at once; default: one per GPU (local, GPUs), up to one per core
                               # (local, no GPU: the cores shared out among the ready jobs), 16 (slurm)
      gpus: auto               # auto (nvidia-smi / CUDA_VISIBLE_DEVICES) | none | [0, 1, 2, 3]
      threads_per_job: null    # OMP_NUM_THREADS of each job; default: the cores divided by the jobs
      exclude: []              # stage names or globs left to `dvc repro` (e.g. [report])
      exclusive: []            # stages that run alone, with every core (e.g. [complexity]: latency)
      orphan_timeout_s: 60     # a job stops its command when the coordinator's heartbeat is this old
      progress_s: 30           # seconds between progress reports
      slurm: {partition: gpu, time_min: 720, gpus_per_job: 1, cpus_per_job: 8, mem_gb: 64,
              setup: ["source .venv/bin/activate"], signal_delay_s: 120}
    """

    executor: Literal["local", "slurm", "debug"] = "local"
    """Where jobs run: `local`, `slurm`, or `debug` (one after another, in this process)."""
    jobs: int | None = Field(None, ge=1)
    """Jobs at once; null: one per GPU, else up to one per core (local), 16 (slurm)."""
    gpus: Literal["auto", "none"] | list[int] = "auto"
    """GPUs to use: `auto` (nvidia-smi / CUDA_VISIBLE_DEVICES), `none`, or a list of indices."""
    threads_per_job: int | None = Field(None, ge=1)
    """OMP_NUM_THREADS of each job; null: the cores shared out among the running jobs."""
    exclude: list[str] = Field(default_factory=list)
    """Stage names or globs the grid leaves to `dvc repro` (e.g. `[report]`)."""
    exclusive: list[str] = Field(default_factory=list)
    """Stages that run alone, with every core (e.g. latency measurements)."""
    orphan_timeout_s: float = Field(60.0, gt=0)
    """A job stops its command when the coordinator's heartbeat is older than this."""
    progress_s: float = Field(30.0, gt=0)
    """Seconds between progress reports."""
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    """The sbatch options of every job (`grid.executor: slurm`)."""


class ModelEntry(BaseModel):
    """One ``models:`` entry: which registered builder, how it is labelled, and its recipe overrides.

    The key is the run's name (folders, stage names); ``model`` names the registered builder and
    defaults to the key, so ``smp_fpn_r18: {model: smp, model_kwargs: {arch: FPN, encoder: resnet18},
    display_name: FPN-R18, family: CNN}`` compares another smp model without writing code.
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, use_attribute_docstrings=True)

    model: str | None = None
    """The registered model to build; null: the entry's key."""
    display_name: str | None = None
    """Label in tables and figures; null: the registry's."""
    family: str | None = None
    """Group in tables (CNN, Transformer, Hybrid, Ablation, ...); null: the registry's."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the model's builder."""

    @model_validator(mode="after")
    def _check_overrides(self) -> ModelEntry:
        extra = dict(self.model_extra or {})
        unknown = sorted(set(extra) - set(TrainParams.model_fields))
        if unknown:
            known = ["model", "display_name", "family", "model_kwargs", *TrainParams.model_fields]
            raise ValueError(f"unknown keys {unknown}; known: {', '.join(known)}")
        TrainParams(**extra)  # type-check the overrides with the recipe's own rules
        check_one_budget(extra, "overrides")
        return self

    @property
    def overrides(self) -> dict[str, Any]:
        """The ``train:`` keys this entry overrides."""
        return dict(self.model_extra or {})


class ModelSpec(BaseModel):
    """A ``models:`` entry resolved against the registry and the recipe."""

    key: str  # run name
    builder: str  # registered model name
    display_name: str
    family: str
    model_kwargs: dict[str, Any]
    recipe: TrainParams


class Params(BaseModel):
    """The whole of params.yaml."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)

    profile: str = "custom"
    """Name of the profile; the reports go to output/<profile>/."""
    datasets: dict[str, DatasetEntry] = Field(default_factory=dict)
    """Datasets to run: adapter name -> its downloaded folder."""
    models: dict[str, ModelEntry | None] = Field(default_factory=dict)
    """Models to run: run name -> builder, labels and `train:` overrides for that model."""
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    """Training seeds; each model is trained once per seed."""
    synthetic: dict[str, GeneratedDataset] = Field(default_factory=dict)
    """Generated datasets: name -> generator settings (stage `synthesize@NAME`)."""
    prepare: PrepareParams = Field(default_factory=PrepareParams)
    """Preparation and splitting (stage `prepare`)."""
    train: TrainParams = Field(default_factory=TrainParams)
    """The training recipe shared by every model (stage `train`)."""
    augment: AugmentParams = Field(default_factory=AugmentParams)
    """Training augmentation (albumentations)."""
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    """Evaluation on the test split (stage `evaluate`)."""
    complexity: ComplexityParams = Field(default_factory=ComplexityParams)
    """Parameters, FLOPs and latency (stage `complexity`)."""
    transfer: TransferParams = Field(default_factory=TransferParams)
    """Cross-dataset evaluation without retraining (stage `transfer`)."""
    report: ReportParams = Field(default_factory=ReportParams)
    """Tables and figures (stage `report`)."""
    grid: GridSettings = Field(default_factory=GridSettings)
    """How `python -m pipeline.grid` (make repro) runs the stages."""

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, datasets: dict[str, DatasetEntry]) -> dict[str, DatasetEntry]:
        from datasets.registry import adapter_names  # lists file names; imports no adapter

        unknown = [key for key in datasets if key not in adapter_names()]
        if unknown:
            raise ValueError(f"unknown dataset {unknown[0]!r}; known: {', '.join(adapter_names())}")
        return datasets

    @field_validator("synthetic")
    @classmethod
    def _generated_names(cls, synthetic: dict[str, GeneratedDataset]) -> dict[str, GeneratedDataset]:
        from datasets.registry import adapter_names

        unknown = [key for key in synthetic if key not in adapter_names()]
        if unknown:
            raise ValueError(f"{unknown[0]!r}: name a generated dataset by its adapter (synthetic, shifted)")
        return synthetic

    @model_validator(mode="before")
    @classmethod
    def _one_budget(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            check_one_budget(raw.get("train"), "train")
        return raw

    @model_validator(mode="before")
    @classmethod
    def _size_given_once(cls, raw: Any) -> Any:
        """``prepare.size`` and ``train.img_size`` are one setting: a file that sets one of them sets both."""
        if not isinstance(raw, dict):
            return raw
        prepare, train = raw.get("prepare"), raw.get("train")
        prepare = prepare if isinstance(prepare, dict) else None
        train = train if isinstance(train, dict) else None
        if prepare is not None and "size" in prepare and "img_size" not in (train or {}):
            if train is not None or "train" not in raw:
                raw = {**raw, "train": {**(train or {}), "img_size": prepare["size"]}}
        elif train is not None and "img_size" in train and "size" not in (prepare or {}):
            if prepare is not None or "prepare" not in raw:
                raw = {**raw, "prepare": {**(prepare or {}), "size": train["img_size"]}}
        return raw

    @model_validator(mode="after")
    def _one_image_size(self) -> Params:
        """A run has one image size: the prepared arrays' and the training's (a silent resize would hide it)."""
        sizes = {"train.img_size": self.train.img_size}
        for key, entry in self.models.items():
            if entry is not None and "img_size" in entry.overrides:
                sizes[f"models.{key}.img_size"] = entry.overrides["img_size"]
        for where, size in sizes.items():
            if size != self.prepare.size:
                raise ValueError(
                    f"{where} {size} differs from prepare.size {self.prepare.size}: a run has one image size, "
                    "set both to the same value"
                )
        return self

    @field_validator("models")
    @classmethod
    def _names(cls, models: dict[str, ModelEntry | None]) -> dict[str, ModelEntry | None]:
        for key in models:
            if not key or not all(c.isalnum() or c in "_-." for c in key):
                raise ValueError(f"model key {key!r}: use letters, digits, '_', '-' or '.' (it names folders)")
        return models

    @model_validator(mode="after")
    def _transfer_datasets(self) -> Params:
        trained, test_only = set(self.datasets), set(self.transfer.test_only)
        both = sorted(trained & test_only)
        if both:
            raise ValueError(f"transfer.test_only: {', '.join(both)} also in datasets: (list it once)")
        seen = set()
        for i, (source, target) in enumerate(self.transfer.pairs):
            where = f"transfer.pairs.{i} [{source}, {target}]"
            if source not in trained:
                listed = " (it is test_only: never trained)" if source in test_only else ""
                raise ValueError(
                    f"{where}: source {source!r} is not one of datasets: ({', '.join(self.datasets)}){listed}"
                )
            if target not in trained | test_only:
                raise ValueError(f"{where}: target {target!r} is in neither datasets: nor transfer.test_only:")
            if source == target:
                raise ValueError(f"{where}: source and target are the same (that is the evaluate stage)")
            if (source, target) in seen:
                raise ValueError(f"{where}: listed twice")
            seen.add((source, target))
        unused = sorted(test_only - {target for _, target in self.transfer.pairs})
        if unused:
            raise ValueError(f"transfer.test_only: {', '.join(unused)} is the target of no pair (remove it)")
        return self

    def model_spec(self, key: str) -> ModelSpec:
        """Resolve the ``models.<key>`` entry (a key that is not listed is the registered model of that name)."""
        from models.registry import model_info

        entry = self.models.get(key) or ModelEntry()
        builder = entry.model or key
        info = model_info(builder)  # UnknownModelError for a name nobody registered
        return ModelSpec(
            key=key,
            builder=builder,
            display_name=entry.display_name or info.display_name,
            family=entry.family or info.family,
            model_kwargs=dict(entry.model_kwargs),
            recipe=self.train.with_overrides(entry.overrides),
        )


def load_params(path: str | os.PathLike | None = None) -> Params:
    """Read and validate params.yaml (or a profile of configs/, its ``extends`` resolved); :class:`ParamsError`
    names the file and the entry at fault."""
    path = params_path(path)
    raw = resolve_profile(path)
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"{path}: {describe(err)}") from err


_EXPECTED = {
    "float_type": "expected a number",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "missing",
    "extra_forbidden": "unknown key",
}


def describe(err: ValidationError) -> str:
    """The first problem of a validation error as ``section.key: expected ..., got ...``."""
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "union[")))
    loc = loc.replace(".ModelEntry", "")
    kind = first["type"]
    if kind in _EXPECTED and kind not in ("missing", "extra_forbidden"):
        message = f"{_EXPECTED[kind]}, got {first['input']!r}"
    elif kind == "extra_forbidden":
        message = "unknown key"
    else:
        message = first["msg"].removeprefix("Value error, ")
        if kind != "missing" and kind != "value_error":
            message += f", got {first['input']!r}"
    more = len(err.errors()) - 1
    return (f"{loc}: " if loc else "") + message + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
