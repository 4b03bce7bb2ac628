"""The one exception type the command lines turn into a clear message and a non-zero exit."""


class InputError(Exception):
    """Bad user input: the message names the file (or option) and what is wrong with it."""
