"""Locust processes (master and workers). The ONLY package that imports locust or gevent.

``import locust`` monkey-patches the whole interpreter with gevent, so nothing outside this package
imports it, and this package is only ever run as its own process: ``python -m loadbench.workers``.
"""
