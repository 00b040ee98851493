"""The engine under the stages: the typed params (``params``), the training recipe and its config (``recipe``),
model building (``factory``), checkpoints (``checkpoint``) and the resume protocol (``resume``), distributed helpers
(``distributed``), devices and RNG (``runtime``), metrics (``metric_names``: torch-free names, labels and units;
``metrics``: per-image computation; ``stats``: bootstrap summaries) and fast inference (``inference``).

Nothing here imports a stage (``pipeline``) or the report code (``reports``); this file imports nothing.
"""
