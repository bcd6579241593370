"""What a run is asked to do, as plain data (layer 1: imports nothing of loadbench but errors and units).

- ``loadbench.plan.load``: ``LoadPlan``, the load plan (mode, stages or rate segments, phases, windows),
  built once by the CLI from a validated profile and read by the master, the workers and the summary.
- ``loadbench.plan.run``: ``RunPlan``, what the CLI hands the Locust master and the master every worker.
"""
