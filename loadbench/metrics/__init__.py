"""Samples, HDR histograms, interval recording and the run summary."""
