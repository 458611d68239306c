"""Benchmarks: scripts that print measured, side-by-side figures (see RESULTS.md); importable for their tests."""
