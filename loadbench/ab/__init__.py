"""``loadbench ab``: an experiment's arms from the gateway's request log, judged by pre-registered
non-inferiority criteria on always-valid confidence sequences (docs/ab.md).

Pure core (layer 3): ``sequential`` (the confidence sequence), ``criteria`` (what is judged),
``analysis`` (arms, criteria, verdict), ``render`` (Markdown, HTML, JSON). ``loadbench.cli.ab_cmd``
reads the SQLite file.
"""
