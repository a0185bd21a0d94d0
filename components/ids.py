"""Namespaced component ids: `PageIds("dataset")("category")` -> "dataset-category"."""

from __future__ import annotations


class PageIds:
    def __init__(self, page: str):
        self.page = page

    def __call__(self, name: str) -> str:
        return f"{self.page}-{name}"

    def match(self, kind: str, index: str | int) -> dict:
        """A dict id for repeated widgets (pattern-matching callbacks)."""
        return {"type": f"{self.page}-{kind}", "index": index}
