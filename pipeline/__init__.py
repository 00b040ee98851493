"""The stages of the DVC pipeline, one module each (``prepare``, ``train``, ``evaluate``, ``complexity``, ``report``,
``fingerprint``), ``predict`` for new images, the grid that runs the stages in parallel (``pipeline/grid/``) and the
benchmarks (``pipeline/tools/``). Stage modules never import each other; what they share is in ``engine/``."""
