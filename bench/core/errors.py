"""Errors that reach the user as one line instead of a traceback."""


class UserError(Exception):
    """A mistake in input or configuration: printed as one line, exit status 2."""


class DataError(UserError):
    """Input data that cannot be used (missing, unreadable, empty)."""


def one_line_reason(exc: BaseException) -> str:
    """What a user reads about a failure: our own message, or the exception type and first line."""
    if isinstance(exc, UserError):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class DataWarning(UserWarning):
    """Something about the user's data worth knowing that does not stop the run (a file skipped):
    the command line shows it as one line, without Python's source excerpt."""
