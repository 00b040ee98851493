"""ImageNet backbone weights on the Hugging Face Hub, as timm and smp resolve them; importing it imports no torch.

A :class:`HubWeights` names one backbone's weights the way its library asks the Hub for them: the repository,
the revision (``None`` where the library pins none, i.e. the Hub's ``main``) and the files it reads. Three
kinds exist:

* timm backbones of the baselines, declared in each baseline's registry metadata as
  ``hub_weights={backbone: "model.tag"}`` (read by the registry without importing the module: no torch):
  timm's own pretrained config puts these on
  ``timm/<model.tag>`` and pins no revision; ``tests/test_pretrained_hub.py`` checks both against timm;
* smp encoders (``encoder_weights="imagenet"``): repository and pinned revision from smp's own encoder tables,
  read from smp's installed source (they are literals there; the tests compare them with the imported tables);
* smp ``tu-`` encoders: timm's pretrained config of that model, which needs timm (and torch) to resolve.

Downloading and cache look-ups are huggingface_hub's, called through timm and smp: HF_HOME, HF_HUB_CACHE and
HF_HUB_OFFLINE apply as those libraries document. :func:`hub_errors` turns huggingface_hub's cache-miss and
download errors into one-line :class:`~models.registry.ModelArgumentError` subclasses.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models.registry import ModelArgumentError

__all__ = [
    "FETCH_COMMAND",
    "HubWeights",
    "HubWeightsError",
    "HubWeightsNotCachedError",
    "PretrainedWeightsError",
    "hub_cache_dir",
    "hub_errors",
    "hub_offline",
    "smp_hub_weights",
    "timm_hub_weights",
]

FETCH_COMMAND = "python -m models fetch-weights --params params.yaml"
_TIMM_FILES = (("model.safetensors", "pytorch_model.bin"),)  # timm reads safetensors first, else the .bin
_SMP_FILES = (("config.json",), ("model.safetensors",))  # smp reads both
SMP_WEIGHTS = "imagenet"


class PretrainedWeightsError(ModelArgumentError):
    """``pretrained`` or ``pretrained_file`` cannot be honoured: the base of every weight error (one line, the
    user's input; re-exported by :mod:`models.pretrained`)."""


class HubWeightsError(PretrainedWeightsError):
    """Hub weights that cannot be had: no such weights, a refused download, the Hub unreachable."""


class HubWeightsNotCachedError(HubWeightsError):
    """The weights are not in the local Hugging Face cache and cannot be downloaded (offline or unreachable)."""


def hub_cache_dir() -> str:
    """The Hugging Face hub cache in use (HF_HUB_CACHE, else HF_HOME/hub, as huggingface_hub read them)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE forbids huggingface_hub to download."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@dataclass(frozen=True)
class HubWeights:
    """One backbone's weights on the Hub: ``library`` (timm or smp) asks for ``name`` (a timm ``model.tag`` or an
    smp encoder), which lives in ``repo_id`` at ``revision`` (``None``: not pinned, the Hub's ``main``) as
    ``files``: groups of file names, one of each group is read."""

    library: str
    name: str
    repo_id: str
    revision: str | None = None
    files: tuple[tuple[str, ...], ...] = _TIMM_FILES

    @property
    def id(self) -> str:
        """``repo_id@revision`` (the form timm's ``hf_hub_id`` takes), or ``repo_id`` when not pinned."""
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id

    @property
    def revision_label(self) -> str:
        return self.revision or "main, not pinned"

    def cache_folder(self) -> str:
        """The repository's folder in the hub cache (``models--ORG--NAME``), whether or not it exists."""
        from huggingface_hub.file_download import repo_folder_name

        return os.path.join(hub_cache_dir(), repo_folder_name(repo_id=self.repo_id, repo_type="model"))

    def cached_files(self) -> list[str] | None:
        """The cached path of the first present file of each group, or None when a group has none cached."""
        from huggingface_hub import try_to_load_from_cache

        found = []
        for group in self.files:
            for filename in group:
                path = try_to_load_from_cache(self.repo_id, filename, revision=self.revision)
                if isinstance(path, str):
                    found.append(path)
                    break
            else:
                return None
        return found

    def not_cached_message(self, what: str) -> str:
        reason = "HF_HUB_OFFLINE=1 forbids downloading" if hub_offline() else "the Hub could not be reached"
        return (
            f"{what}: weights {self.repo_id} (revision {self.revision_label}) are not in the Hugging Face cache "
            f"{self.cache_folder()} and {reason}; fetch them once where the Hub is reachable with "
            f"`{FETCH_COMMAND}` (same HF_HOME/HF_HUB_CACHE), or give a local pretrained_file"
        )

    def record(self) -> dict:
        """Provenance of the weights as loaded from the cache: library version, id, snapshot commit, file, sha256."""
        paths = self.cached_files()
        if paths is None:  # loaded a moment ago; only a concurrent cache clean-up gets here
            raise HubWeightsNotCachedError(self.not_cached_message(f"{self.library} {self.name}"))
        weights = paths[-1]
        return {
            "source": "hub",
            "library": f"{self.library} {_version(self.library)}",
            "name": self.name,
            "id": self.id,
            "revision": self.revision or "main",
            "commit": Path(weights).parent.name,  # snapshots/<commit>/<file>
            "file": Path(weights).name,
            "sha256": file_sha256(weights),
        }


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _version(library: str) -> str:
    package = {"smp": "segmentation_models_pytorch"}.get(library, library)
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def timm_hub_weights(name: str) -> HubWeights:
    """A baseline's declared timm ``model.tag``: timm keeps these on ``timm/<model.tag>``, unpinned."""
    if "." not in name:
        raise ValueError(f"HUB_WEIGHTS entries name a timm model with its pretrained tag, got {name!r}")
    return HubWeights("timm", name, f"timm/{name}")


def _timm_resolved(name: str) -> HubWeights:
    """What timm's registry says for ``name`` (with or without a tag); imports timm."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise HubWeightsError(f"timm has no Hugging Face Hub weights for {name!r}")
    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    files = ((cfg.hf_hub_filename,),) if cfg.hf_hub_filename else _TIMM_FILES
    return HubWeights("timm", f"{cfg.architecture}.{cfg.tag}", repo_id, revision or None, files)


@functools.cache
def smp_pretrained_settings() -> dict[str, dict[str, dict[str, str]]]:
    """smp's ``{encoder: {weights: {"repo_id", "revision"}}}``, read from the installed smp's encoder modules
    (where they are literals) without importing smp."""
    spec = importlib.util.find_spec("segmentation_models_pytorch")
    if spec is None or spec.origin is None:
        return {}
    found: dict[str, dict] = {}
    for path in sorted((Path(spec.origin).parent / "encoders").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(value, ast.Dict)):
                    continue
                fields = zip(value.keys, value.values, strict=True)
                entry = {k.value: v for k, v in fields if isinstance(k, ast.Constant)}
                if "pretrained_settings" in entry:
                    with contextlib.suppress(ValueError):
                        found[key.value] = ast.literal_eval(entry["pretrained_settings"])
    return found


def smp_hub_weights(encoder: str) -> HubWeights:
    """The weights smp loads for ``encoder`` with ``encoder_weights="imagenet"`` (``tu-<timm model>``: timm's
    default or named tag, resolved by timm)."""
    if encoder.startswith("tu-"):
        return _timm_resolved(encoder[3:])
    settings = smp_pretrained_settings().get(encoder)
    if settings is None:
        raise HubWeightsError(f"smp has no encoder {encoder!r} with pretrained weights")
    if SMP_WEIGHTS not in settings:
        raise HubWeightsError(
            f"smp has no {SMP_WEIGHTS!r} weights for encoder {encoder!r} (it has {sorted(settings)}); "
            "use a local pretrained_file"
        )
    chosen = settings[SMP_WEIGHTS]
    return HubWeights("smp", encoder, chosen["repo_id"], chosen.get("revision"), _SMP_FILES)


@contextlib.contextmanager
def hub_errors(hub: HubWeights, what: str) -> Iterator[None]:
    """Turn huggingface_hub's errors while ``hub`` is loaded into one-line errors naming ``what``, the id and
    the cache: a cache miss offline (or with the Hub unreachable) is :class:`HubWeightsNotCachedError`."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        yield
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        raise HubWeightsNotCachedError(hub.not_cached_message(what)) from err
    except HfHubHTTPError as err:  # repository not found, gated, server errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HubWeightsError(f"{what}: cannot download {hub.id} from the Hugging Face Hub: {first}") from err
