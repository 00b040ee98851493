"""One module per dataset adapter, named by the adapter's registry name (``ph2.py`` defines the adapter
``ph2``). Adapters import only the shared parts in ``datasets/`` (``base``, ``layouts``, ``reader``), never each
other: the DVC stage ``prepare@NAME`` depends on ``datasets/adapters/NAME.py`` alone (checked by the tests)."""
