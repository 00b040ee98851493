"""Model zoo: DyGLNet, its ablation variants and every baseline, behind one registry.

``list_models()`` and ``model_info()`` read the registered names from the source and import nothing;
``create_model(name)`` imports the one module that defines ``name``.
"""

from models.registry import (
    ModelArgumentError,
    ModelInfo,
    UnknownModelError,
    create_model,
    list_models,
    model_info,
    register_model,
)

__all__ = [
    "ModelArgumentError",
    "ModelInfo",
    "UnknownModelError",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
