"""The project an import writes into: opened, or created and removed again if the import fails."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from harapp.core.store import Project


@contextlib.contextmanager
def import_target(path: Path) -> Iterator[tuple[Project, bool]]:
    """Yields the project and whether this call created its file.

    An import is all-or-nothing, so a file created for an import that failed or was cancelled would only be an
    empty project: it is removed, with its WAL files. An existing project is left as the import left it.
    """
    path = Path(path)
    created = not path.exists()
    project = Project.open_or_create(path)
    try:
        yield project, created
    except BaseException:
        project.close()
        if created:
            _remove_project_file(path)
        raise
    finally:
        project.close()


def _remove_project_file(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(str(path) + suffix).unlink(missing_ok=True)
