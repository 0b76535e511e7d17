"""Crossdock benchmark harness: load generator, ERP recorder, peers and report.

Import as ``harness`` with ``bench/`` on ``sys.path`` (``bench/run.py`` does this
by being run as a script; the tests insert it explicitly).
"""
