"""Test-only builders and data locations, shared by the tests and the benchmarks; never part of the package."""
