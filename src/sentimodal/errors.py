"""Exceptions shared by every layer.

A :class:`UserInputError` is something the user can fix (a missing folder, a bad option, a
foreign model directory); interfaces print its message on one line and exit with code 2.
A :class:`RecordError` concerns one record only: batch jobs turn it into a reject and go on.
"""


class SentimodalError(Exception):
    """Base class of this package's errors."""


class UserInputError(SentimodalError):
    """A problem the user can fix; the message says what and where."""


class RecordError(SentimodalError):
    """One bad record (post, image, row); the message is the reject reason."""
