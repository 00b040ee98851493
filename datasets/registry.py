"""Name -> adapter class. Adding a dataset = one adapter class and one line here."""

from __future__ import annotations

from datasets.base import Adapter, DatasetError
from datasets.brain_mri import BrainMRI
from datasets.cvc import CVC
from datasets.folder import Folder, Synthetic
from datasets.glas import GlaS
from datasets.isic2016 import ISIC2016
from datasets.kvasir import Kvasir
from datasets.ph2 import PH2
from datasets.tnbc import TNBC

ADAPTERS: dict[str, type[Adapter]] = {
    cls.name: cls for cls in (Kvasir, CVC, BrainMRI, ISIC2016, PH2, GlaS, TNBC, Folder, Synthetic)
}


def get_adapter(name: str) -> Adapter:
    """An adapter instance by registry name."""
    try:
        return ADAPTERS[name]()
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(ADAPTERS)}") from None
