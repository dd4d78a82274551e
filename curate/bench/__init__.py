"""Benchmarks: pipeline steps that measure a capability on real data and write reports/*.md."""
