"""The one base class of every error that means bad input rather than a bug."""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user gave (a flag, a params.yaml value, a file): reported in one line.

    Every package derives its input errors from this class (``datasets.DatasetError``,
    ``models.UnknownModelError``, ``engine.params.ParamsError``, ...), so :func:`core.cli.run` needs to know
    no other type.
    """
