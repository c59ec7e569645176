"""The one error of packaging a user's model: the message says what to do instead."""


class PackagingError(Exception):
    """``python -m registry add`` cannot package this model; nothing is written."""
