"""Report code of the `report` stage (``python -m pipeline.report``): load -> build -> write.

- ``inputs``: load and check every file the reports read (:class:`inputs.Inputs`);
- ``summary``: numbers with their uncertainty (CI over images; with several seeds the std between seeds and the
  two-level bootstrap interval, seeds then images) and row flags;
- ``flags``: the degenerate and unconverged rules;
- ``table``: the table model, best/second marking with separability, Markdown rendering;
- ``latex``: LaTeX rendering (booktabs, ``table*``, packages named in a header comment);
- ``paper``: the paper's own numbers and table layouts from ``reports/paper/*.csv``;
- one module per report: ``comparison`` (Tables 2-5 and HD95), ``ablation`` (Table 6 and variant cost),
  ``complexity`` (Table 7), ``initialisation`` (scratch against pretrained, beyond the paper), ``paper_vs_ours``,
  ``significance``, ``claims``, ``ranking_report`` (the main models ranked per dataset with ``ranking``, the
  challengeR-style library, and the "ranks first" verdict), ``reproduction`` (this run against the results recorded
  in git, read by ``recorded``), ``figures`` (rendering), ``ranking_figures`` (the ranking's figures),
  ``captions`` (what each figure shows, and ``figures.md``);
- ``provenance``: commit, pipeline and split digests, recipe, the weights each model started from, software,
  device;
- ``overlays``: the overlay colours of the qualitative figure, shared with ``pipeline.predict --overlay``;
- ``assemble``: every output file in memory from the loaded inputs.

Generated files go to ``output/``; this folder holds code and the paper's numbers only.
"""
