"""Touchline benchmarks: they print figures (throughput, rounds, memory); they are not pass/fail tests.
Run from the repository root, e.g. ``python -m benchmarks.identity_bench``; docs/benchmarks.md records results."""
