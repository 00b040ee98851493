"""The bottom layer every other package may import: the user-error base and the CLI runner, atomic writes,
the repository's paths and its import graph. Nothing here imports another first-party package."""
