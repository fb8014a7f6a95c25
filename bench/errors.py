"""Errors that reach the user as one line instead of a traceback."""


class UserError(Exception):
    """A mistake in input or configuration: printed as one line, exit status 2."""


class DataError(UserError):
    """Input data that cannot be used (missing, unreadable, empty)."""
