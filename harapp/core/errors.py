"""Exceptions that carry a message fit to show a user: each names the file and the cause."""

from __future__ import annotations


class HarappError(Exception):
    """Base class for every error harapp reports to a user."""


class ProjectError(HarappError):
    """The project file is missing, not a harapp project, or from a newer harapp."""


class ProjectLockedError(ProjectError):
    """Another process holds the project's write lock for too long."""


class ProjectReadOnlyError(ProjectError):
    """A change was refused because the project is open read-only (its file or folder is not writable)."""


class ProjectDamagedError(ProjectError):
    """The project file's pages are damaged; `harapp repair` copies what is readable into a new file."""


class DatasetError(HarappError):
    """An input dataset (COCO JSON, folder tree) is malformed; the message says where."""


class ImageFileError(HarappError):
    """A file could not be read as an image."""


class LabelError(HarappError):
    """A label operation names an unknown class, image or person."""


class MissingFilesError(DatasetError):
    """Photos a job needs are gone from disk; `missing` lists them (harapp.core.missing_files.MissingFiles)."""

    def __init__(self, message: str, missing: object) -> None:
        super().__init__(message)
        self.missing = missing
