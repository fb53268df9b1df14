"""The project store: one SQLite file per project (schema, images, labels, classes, models)."""

from harapp.core.store.project import Project

__all__ = ["Project"]
