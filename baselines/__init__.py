"""Baseline models. Every module here is imported by ``models.discover()``; each registers its
builders with ``@register_model`` from ``models.registry``. Adding a baseline = adding one file."""
