"""Stages 5-6: assignment, per-sample metrics, compat: metajudge, outcome accuracy and the corpus summary. Pure numpy."""
