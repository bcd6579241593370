"""Benchmarks (``make bench``): figures go to bench/out/*.json, never into test assertions."""
