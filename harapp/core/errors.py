"""Exceptions that carry a message fit to show a user: each names the file and the cause."""

from __future__ import annotations


class HarappError(Exception):
    """Base class for every error harapp reports to a user."""


class ProjectError(HarappError):
    """The project file is missing, not a harapp project, or from a newer harapp."""


class ProjectLockedError(ProjectError):
    """Another process holds the project's write lock for too long."""


class DatasetError(HarappError):
    """An input dataset (COCO JSON, folder tree) is malformed; the message says where."""


class ImageFileError(HarappError):
    """A file could not be read as an image."""


class LabelError(HarappError):
    """A label operation names an unknown class, image or person."""
