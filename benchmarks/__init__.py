"""Benchmarks: figures, never pass/fail tests (see docs/benchmarks.md)."""
