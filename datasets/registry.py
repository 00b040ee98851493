"""Name -> adapter. Adding a dataset = one file ``datasets/adapters/NAME.py`` defining an ``Adapter`` subclass with
``name = "NAME"``; nothing else to register.

Names come from the file names, so listing them imports nothing; :func:`get_adapter` imports the one module of
the adapter asked for (a stage that reads one dataset runs the code of that dataset's adapter alone).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from datasets.base import Adapter, DatasetError

ADAPTER_PACKAGE = "datasets.adapters"
ADAPTER_DIR = Path(__file__).resolve().parent / "adapters"


def adapter_names() -> list[str]:
    """Sorted names of the dataset adapters (the modules of ``datasets/adapters/``); imports nothing."""
    return sorted(p.stem for p in ADAPTER_DIR.glob("*.py") if not p.name.startswith("_"))


def adapter_file(name: str) -> Path:
    """The source file of adapter ``name`` (``datasets/adapters/NAME.py``)."""
    return ADAPTER_DIR / f"{name}.py"


def adapter_class(name: str) -> type[Adapter]:
    """The ``Adapter`` subclass named ``name``, from its own module."""
    if name not in adapter_names():
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(adapter_names())}")
    module = importlib.import_module(f"{ADAPTER_PACKAGE}.{name}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Adapter) and getattr(value, "name", None) == name:
            return value
    raise RuntimeError(f"{module.__file__} defines no Adapter subclass with name = {name!r}")


def get_adapter(name: str) -> Adapter:
    """An adapter instance by registry name."""
    return adapter_class(name)()
