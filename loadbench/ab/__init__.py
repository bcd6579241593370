"""``loadbench ab``: an experiment's arms from the gateway's request log, judged by pre-registered
non-inferiority criteria on always-valid confidence sequences (docs/ab.md).

Pure core (layer 3): ``sequential`` (the confidence sequence), ``criteria`` (what is judged),
``analysis`` (arms, criteria, verdict), ``render`` (Markdown, HTML, JSON). The workflows read the
request log through ``loadbench.results.request_log``: ``workflow`` (``loadbench ab``), ``shadows``
(``loadbench log shadows``) and ``harvest`` (``loadbench dataset from-log``).
"""
