"""Dataset adapters (original layouts -> image/mask pairs), the reader, splits and the torch data path.

`datasets.torch_data` (torch, albumentations) is not imported here, so preparing data needs neither.
"""

from datasets.base import Adapter, DatasetError, DatasetWarning, Pair
from datasets.reader import load_image, load_mask
from datasets.registry import ADAPTERS, get_adapter
from datasets.splits import resolve_selection

__all__ = [
    "ADAPTERS",
    "Adapter",
    "DatasetError",
    "DatasetWarning",
    "Pair",
    "get_adapter",
    "load_image",
    "load_mask",
    "resolve_selection",
]
