"""Errors raised by Armillary.

Every error a user can cause is an :class:`ArmillaryError`; its message names the file,
column or value at fault and says what to do about it.
"""

from __future__ import annotations


class ArmillaryError(Exception):
    """Base class of every error Armillary raises on bad input."""


class CatalogueError(ArmillaryError):
    """A catalogue file cannot be read, or is not what the caller said it is."""


class CatalogueNotFoundError(CatalogueError, FileNotFoundError):
    """The catalogue file does not exist."""


class ColumnNotFoundError(CatalogueError, KeyError):
    """A column named by the caller is not in the catalogue."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateIdError(CatalogueError):
    """The id column holds the same id more than once."""


class UnknownIdError(ArmillaryError, KeyError):
    """An id that is not in the catalogue."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownClassError(ArmillaryError, ValueError):
    """A class name that is not one of the session's classes."""


class StoreError(ArmillaryError):
    """The label store cannot be opened or written."""


class InvalidEventError(StoreError, ValueError):
    """A label event with a bad kind, label, row id or session; nothing is written."""


class UnknownClassEventError(InvalidEventError, UnknownClassError):
    """A label event whose class is not one of the label store's classes."""


class ReadOnlyStoreError(StoreError, PermissionError):
    """A write to a label store opened read-only; nothing is written."""


class CatalogueMismatchError(StoreError):
    """A label store opened for another catalogue than the one it belongs to."""


class LabelFileError(ArmillaryError):
    """A file of labels to import or export is missing, malformed or of an unknown format."""


class ArmillaryWarning(UserWarning):
    """Base class of the warnings Armillary gives about the data it is handed."""


class AllNaNFeatureWarning(ArmillaryWarning):
    """A feature (a column or expression) holds no number at all: every value is NaN."""
