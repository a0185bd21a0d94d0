"""Errors a user can fix: the CLI prints their message (what was wrong and how to fix it) and exits 2."""


class UserError(Exception):
    """Bad input or a request that cannot be carried out; the message says how to fix it."""
