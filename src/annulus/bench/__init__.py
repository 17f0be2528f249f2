"""Benchmarks run by ``annulus bench TARGET``: one module a target."""
