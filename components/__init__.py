"""Shared UI pieces and pure figure builders (DataFrame in, figure out). No SQL, no data access."""
