"""Model zoo: DyGLNet, its ablation variants and every registered baseline."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

_discovered = False


def discover_one(name: str) -> None:
    """Import the module most likely to register ``name``: ``models.dyglnet`` for DyGLNet and its
    variants, else ``baselines/<name>.py`` if that file exists."""
    if name.startswith("dyglnet"):
        importlib.import_module("models.dyglnet")
    elif importlib.util.find_spec(f"baselines.{name}") is not None:
        importlib.import_module(f"baselines.{name}")


def discover() -> None:
    """Import ``models.dyglnet`` and every module of the ``baselines`` package once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    importlib.import_module("models.dyglnet")
    import baselines

    for info in pkgutil.iter_modules(baselines.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"baselines.{info.name}")


from models.registry import ModelInfo, create_model, list_models, model_info, register_model  # noqa: E402

__all__ = ["ModelInfo", "create_model", "discover", "discover_one", "list_models", "model_info", "register_model"]
