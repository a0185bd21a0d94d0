"""The two ways a view can be unavailable: what pages turn into their empty states."""

from __future__ import annotations


class NotFoundError(LookupError):
    """A requested dataset, site, stimulus, model ... does not exist in this build."""


class NotComputedError(LookupError):
    """The view needs results this build does not have yet; `command` computes them."""

    def __init__(self, what: str, command: str):
        super().__init__(f"{what} not computed yet")
        self.what = what
        self.command = command
