"""Benchmarks: `make bench` runs them all and prints tables (see docs/benchmarks.md)."""
