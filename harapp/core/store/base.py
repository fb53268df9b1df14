"""What every part of the project store shares: the connection, transactions and the label revision."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from harapp.core.errors import ProjectError, ProjectLockedError, ProjectReadOnlyError
from harapp.core.store import health as store_health


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


IDS_PER_QUERY = 500
"""Ids bound in one `IN (...)`: SQLite before 3.32 allows no more than 999 variables in a statement."""


def id_chunks(ids: Iterable[int]) -> Iterator[tuple[list[int], str]]:
    """The distinct ids in ascending order, in chunks, each with its '?,?,...' placeholders."""
    unique = sorted(set(ids))
    for start in range(0, len(unique), IDS_PER_QUERY):
        chunk = unique[start : start + IDS_PER_QUERY]
        yield chunk, ",".join("?" * len(chunk))


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just made (sqlite3 leaves it None only when no row was inserted)."""
    if cursor.lastrowid is None:
        raise RuntimeError("the INSERT made no row")
    return cursor.lastrowid


_P = TypeVar("_P", bound="ProjectBase")


class ProjectBase:
    def __init__(self, path: Path, conn: sqlite3.Connection, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self.readonly_reason: str | None = None
        """Why the project could not be opened for writing (its file or folder is read-only), else None."""
        self._conn = conn
        self._depth = 0
        self._healthy = False  # set once opened and checked; cleared when damage is seen

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.ProgrammingError:
            return
        except sqlite3.Error:
            self._healthy = False
        if self._healthy:
            # The file as harapp leaves it: the next open may skip the full quick_check (see store_health).
            self._healthy = False
            store_health.remember_healthy(self.path)

    def _damage_seen(self, exc: BaseException) -> ProjectError:
        self._healthy = False
        store_health.forget(self.path)
        return store_health.damaged(self.path, str(exc))

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one, so an import is all-or-nothing."""
        if self.readonly:
            why = f" because {self.readonly_reason}" if self.readonly_reason else ""
            raise ProjectReadOnlyError(
                f"{self.path}: opened read-only{why}; nothing was changed. Copy the project (with its .models "
                "folder) somewhere writable to edit it."
            )
        if self._depth:
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise ProjectLockedError(
                    f"{self.path}: another process is writing this project; try again when it has finished"
                ) from exc
            raise ProjectError(f"{self.path}: cannot write ({exc})") from exc
        self._depth = 1
        try:
            yield self._conn
        except sqlite3.DatabaseError as exc:
            if not isinstance(exc, sqlite3.OperationalError) and not store_health.is_damage(exc):
                self._rollback()
                raise
            with contextlib.suppress(sqlite3.Error):
                self._rollback()
            if store_health.is_damage(exc):
                raise self._damage_seen(exc) from exc
            # "database or disk is full", "database is locked", I/O errors: say which file and that nothing changed.
            raise ProjectError(f"{self.path}: could not save the change ({exc}); the project is unchanged") from exc
        except BaseException:
            self._rollback()
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._rollback()
                if store_health.is_damage(exc):
                    raise self._damage_seen(exc) from exc
                raise ProjectError(f"{self.path}: could not save the change ({exc})") from exc
        finally:
            self._depth = 0

    def _rollback(self) -> None:
        # SQLite rolls back by itself on some errors (a full disk), so only roll back what is still open.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def _read(self) -> Iterator[None]:
        """A read transaction, so several queries see one consistent state of the file."""
        if self._depth:
            yield
            return
        self._conn.execute("BEGIN")
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group many changes into one commit; an exception inside leaves the project as it was."""
        with self._write():
            yield

    def _bump_revision(self) -> None:
        self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'label_revision'")

    def label_revision(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'label_revision'").fetchone()
        return int(row[0])
