"""The one exception type the command line turns into a one-line message."""


class UsageError(ValueError):
    """Bad user input (names, sizes, paths): the message says what is allowed."""
