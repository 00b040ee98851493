"""The source files behind a model, for the DVC pipeline's code fingerprints (``pipeline.fingerprint``) and
``python -m models --deps``. Not imported by ``models/__init__.py``, so that it is no part of any model's own
fingerprint."""

from __future__ import annotations

from core.imports import module_sources
from models.registry import MODEL_PACKAGES, model_info


def model_sources(name: str) -> list[str]:
    """The source files that building model ``name`` executes: its module, its first-party imports, and the
    registry with the packages it scans."""
    return module_sources(model_info(name).module, *MODEL_PACKAGES)
