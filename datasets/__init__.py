"""Data: the dataset adapters (``datasets/adapters/``: one file per dataset, its downloaded layout -> image/mask
pairs), the reader, the splits and the torch data path; and getting a dataset: where it comes from (``catalog``),
its download and unpacking (``fetch``, ``download``, ``archives``) and its integrity check (``check``).

This file imports nothing, so that a module that needs one part (``datasets.torch_data`` for training,
``datasets.registry`` for a name) runs only that part: the code fingerprint of each DVC stage covers the files it
can execute, and an adapter's file counts only for the ``prepare`` stage of its own dataset.
"""
