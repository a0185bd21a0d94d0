"""Datasets: the synthetic HvM-like default, importers for real formats, and the shared writer."""
