"""The test suite. ``tests.helpers`` holds the test-only builders (also imported by benchmarks/)."""
