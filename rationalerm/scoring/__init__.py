"""Stages 5-6: assignment, per-sample metrics (the paper's rules or a compat mode's), outcome accuracy and the
corpus summary (``metrics.json``). Pure numpy.

Inside, lower first: ``sample`` (a sample's score), ``stats`` (bootstrap), ``settings`` (the config sections),
``assign``, ``metajudge``, ``metrics``, ``rows`` (results.jsonl rows), ``outcome``, ``summary``.
"""
