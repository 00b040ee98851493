"""Baseline models, one file each. Every model is a builder function decorated with ``@register_model`` from
``models.registry``; the registry finds every such function in ``models/`` and ``baselines/`` by reading the
files, so adding a baseline = adding one file. Files starting with ``_`` hold parts shared by several
baselines. Local pretrained weights go through ``models.pretrained``."""
