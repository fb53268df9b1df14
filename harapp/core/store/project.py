"""The project store: one SQLite file per project, every change committed at once."""

from __future__ import annotations

import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harapp.core.errors import LabelError, ProjectError
from harapp.core.store import classes as store_classes
from harapp.core.store import health as store_health
from harapp.core.store import snapshot as store_snapshot
from harapp.core.store.base import dumps, id_chunks, inserted_id, loads, now
from harapp.core.store.columns import ColumnsMixin
from harapp.core.store.images import ImagesMixin
from harapp.core.store.models import ModelsMixin
from harapp.core.store.quality import QualityMixin
from harapp.core.store.schema import APP_ID, SCHEMA_VERSION, migrate
from harapp.core.types import (
    DEFAULT_CLASSES,
    SOURCES,
    ClassInfo,
    HistoryEntry,
    Label,
    LabelledItem,
    LabelSnapshot,
    ModelRecord,
    ProjectStats,
    Source,
)

SQLITE_MAGIC = b"SQLite format 3\x00"


def _busy_timeout_ms() -> int:
    # How long a writer waits for another process's transaction before it reports the project as locked.
    return int(os.environ.get("HARAPP_BUSY_TIMEOUT_MS", "5000"))


class Project(ImagesMixin, ModelsMixin, QualityMixin, ColumnsMixin):
    """A harapp project file. Use `Project.create` or `Project.open`; close it, or use it as a context manager."""

    # -- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, classes: Sequence[str] = DEFAULT_CLASSES) -> Project:
        path = Path(path)
        if path.exists():
            raise ProjectError(f"{path}: a file already exists there; open it or choose another name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK | os.X_OK):
                raise ProjectError(f"{path}: cannot create the project there: the folder {path.parent} is read-only")
            conn = cls._connect(path, readonly=False)
        except (OSError, sqlite3.Error) as exc:
            cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ProjectError(f"{path}: cannot create the project there ({cause})") from exc
        project = cls(path, conn, readonly=False)
        try:
            project._enable_wal()
            with project._write():
                migrate(project._conn, 0)
                project._conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("app", APP_ID), ("created_at", now()), ("label_revision", "0")],
                )
                for name in classes:
                    store_classes.insert_class(project._conn, name)
        except BaseException:
            project.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            raise
        project._healthy = True
        return project

    @classmethod
    def open(cls, path: Path, readonly: bool = False) -> Project:
        """Open a project; read-only when asked, or when its file or folder is not writable (`readonly_reason`
        says why). A file harapp did not last leave healthy gets a quick_check first (see store_health)."""
        path = Path(path)
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                raise ProjectError(f"{path}: not a project file (a folder or a device)")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ProjectError(f"{path}: no such project file") from exc
        except OSError as exc:
            raise ProjectError(f"{path}: cannot read the project file ({exc.strerror or exc})") from exc
        try:
            with path.open("rb") as handle:
                head = handle.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise ProjectError(f"{path}: cannot read the project file ({exc.strerror or exc})") from exc
        if head != SQLITE_MAGIC:
            raise ProjectError(f"{path}: not a harapp project (the file is not an SQLite database)")
        reason = store_health.why_read_only(path)
        readonly = readonly or reason is not None
        project = cls(path, cls._connect(path, readonly), readonly)
        project.readonly_reason = reason
        try:
            try:
                project._check_and_migrate()
            except _NeedsImmutable:
                project.close()
                wal = store_health.unmerged_wal(path)
                if wal is not None:
                    raise ProjectError(
                        f"{path}: {reason or 'cannot write here'}, and its latest changes are still in {wal.name}: "
                        "open it once where it is writable (or copy the folder elsewhere) to merge them"
                    ) from None
                project = cls(path, cls._connect(path, True, immutable=True), True)
                project.readonly_reason = reason
                project._check_and_migrate()
            if not store_health.known_healthy(path):
                store_health.quick_check(project._conn, path)
            project._enable_wal()
        except BaseException:
            project.close()
            raise
        project._healthy = True
        return project

    @classmethod
    def open_or_create(cls, path: Path) -> Project:
        return cls.open(path) if Path(path).exists() else cls.create(path)

    @staticmethod
    def _connect(path: Path, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
        uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rwc'}" + ("&immutable=1" if immutable else "")
        # Autocommit mode: this class issues BEGIN/COMMIT itself, so each change commits when it says so.
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, timeout=_busy_timeout_ms() / 1000, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {_busy_timeout_ms()}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _enable_wal(self) -> None:
        # Only after the file is known to be ours: switching journal modes rewrites the file header.
        if not self.readonly:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")

    def _check_and_migrate(self) -> None:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            code = store_health.error_code(exc)
            if self.readonly and store_health.is_read_only_failure(exc):
                raise _NeedsImmutable from exc
            if code == store_health.SQLITE_CORRUPT:
                raise store_health.damaged(self.path, str(exc)) from exc
            if code in (store_health.SQLITE_PERM, store_health.SQLITE_IOERR, store_health.SQLITE_CANTOPEN):
                raise ProjectError(f"{self.path}: cannot read the project file ({exc})") from exc
            raise ProjectError(f"{self.path}: not a harapp project ({exc})") from exc
        if row is None or row[0] != APP_ID:
            raise ProjectError(f"{self.path}: an SQLite database, but not a harapp project (no harapp metadata)")
        if version > SCHEMA_VERSION:
            raise ProjectError(
                f"{self.path}: made by a newer harapp (schema {version}, this one reads up to {SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:
            if self.readonly:
                raise ProjectError(f"{self.path}: needs an upgrade to schema {SCHEMA_VERSION}; open it writable once")
            with self._write():
                migrate(self._conn, version)

    # -- classes ---------------------------------------------------------------------------------------------

    def classes(self) -> list[ClassInfo]:
        return store_classes.list_classes(self._conn)

    def class_names(self) -> list[str]:
        return [c.name for c in self.classes()]

    def stale_model_reason(self, model: ModelRecord) -> str | None:
        """Why a model's predictions no longer fit the project (its classes were renamed, merged or added to
        since it was trained), or None when they still do."""
        theirs = tuple(model.metrics.get("class_names") or ())
        ours = tuple(self.class_names())
        if not theirs or theirs == ours:
            return None
        return (
            f"{model.name} was trained on the classes {', '.join(theirs)}, but the project's classes are now "
            f"{', '.join(ours)}: retrain to predict them."
        )

    def add_class(self, name: str) -> ClassInfo:
        with self._write() as conn:
            info = store_classes.add_class(conn, name)
            self._bump_revision()
        return info

    def rename_class(self, old: str, new: str) -> None:
        with self._write() as conn:
            store_classes.rename_class(conn, old, new)
            self._bump_revision()

    def merge_classes(self, names: Sequence[str], into: str) -> int:
        """Merge classes into one (new or existing); the merge is recorded so undo_class_op can reverse it."""
        with self._write() as conn:
            op_id = store_classes.merge_classes(conn, names, into, self._record_class_change)
            self._bump_revision()
        return op_id

    def undo_class_op(self) -> str:
        """Undo the latest class operation not yet undone; returns a description of what was undone."""
        with self._write() as conn:
            text = store_classes.undo_last(conn, self._record_class_change)
            self._bump_revision()
        return text

    def _record_class_change(
        self,
        image_id: int,
        person_id: int | None,
        old: str | None,
        new: str | None,
        source: Source,
        reason: str,
        batch: str,
    ) -> None:
        self._conn.execute(
            "INSERT INTO history (at, image_id, person_id, old_class, new_class, old_source, new_source, reason, batch)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now(), image_id, person_id, old, new, source, source, reason, batch),
        )

    # -- labels ----------------------------------------------------------------------------------------------

    def _current_label(self, image_id: int, person_id: int | None) -> tuple[int | None, str | None, str | None]:
        row = self._conn.execute(
            "SELECT l.id, c.name, l.source FROM labels l JOIN classes c ON c.id = l.class_id"
            " WHERE l.image_id = ? AND IFNULL(l.person_id, 0) = ?",
            (image_id, person_id or 0),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else (None, None, None)

    def _apply_label(
        self,
        image_id: int,
        person_id: int | None,
        class_name: str | None,
        source: Source,
        votes: dict[str, int] | None,
        confidence: float | None,
        reason: str,
        batch: str | None,
    ) -> HistoryEntry | None:
        if source not in SOURCES:
            raise LabelError(f"unknown label source {source!r}; use one of {', '.join(SOURCES)}")
        conn = self._conn
        if conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
            raise LabelError(f"{self.path}: no image with id {image_id}")
        if (
            person_id is not None
            and conn.execute("SELECT 1 FROM persons WHERE id = ? AND image_id = ?", (person_id, image_id)).fetchone()
            is None
        ):
            raise LabelError(f"{self.path}: image {image_id} has no person with id {person_id}")
        label_id, old_class, old_source = self._current_label(image_id, person_id)
        stamp = now()
        if class_name is None:
            if label_id is None:
                return None
            conn.execute("DELETE FROM labels WHERE id = ?", (label_id,))
        else:
            class_id = store_classes.class_id(conn, class_name)
            if class_id is None:
                raise LabelError(f"unknown class {class_name!r}; classes are: {', '.join(self.class_names())}")
            if old_class == class_name and old_source == source:
                return None
            if label_id is None:
                conn.execute(
                    "INSERT INTO labels (image_id, person_id, class_id, source, votes, confidence, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (image_id, person_id, class_id, source, dumps(votes or {}), confidence, stamp, stamp),
                )
            else:
                conn.execute(
                    "UPDATE labels SET class_id = ?, source = ?, votes = ?, confidence = ?, updated_at = ?"
                    " WHERE id = ?",
                    (class_id, source, dumps(votes or {}), confidence, stamp, label_id),
                )
        # In HistoryEntry's field order, after its id.
        new_source = source if class_name else None
        row = (stamp, image_id, person_id, old_class, class_name, old_source, new_source, reason, batch)
        cur = conn.execute(
            "INSERT INTO history (at, image_id, person_id, old_class, new_class, old_source, new_source, reason, batch)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        self._bump_revision()
        return HistoryEntry(inserted_id(cur), *row)

    def set_label(
        self,
        image_id: int,
        class_name: str | None,
        source: Source = "human",
        person_id: int | None = None,
        votes: dict[str, int] | None = None,
        confidence: float | None = None,
        reason: str = "edit",
        batch: str | None = None,
    ) -> HistoryEntry | None:
        """Set (or with None, clear) one label; committed before this returns. None means nothing changed."""
        with self._write():
            return self._apply_label(image_id, person_id, class_name, source, votes, confidence, reason, batch)

    def set_labels(
        self, changes: Sequence[tuple[int, str | None]], source: Source = "human", reason: str = "bulk"
    ) -> list[HistoryEntry]:
        """Relabel many images in one commit and one history batch, so one undo reverses them all."""
        batch = uuid.uuid4().hex
        with self._write():
            entries = [
                self._apply_label(image_id, None, name, source, None, None, reason, batch) for image_id, name in changes
            ]
        return [e for e in entries if e is not None]

    def _replay(self, entry_ids: Sequence[int], use_old: bool, reason: str) -> list[HistoryEntry]:
        if not entry_ids:
            return []
        marks = ",".join("?" * len(entry_ids))
        rows = self._conn.execute(
            f"SELECT image_id, person_id, old_class, new_class, old_source, new_source FROM history"
            f" WHERE id IN ({marks}) ORDER BY id",
            list(entry_ids),
        ).fetchall()
        if len(rows) != len(set(entry_ids)):
            raise LabelError(f"{self.path}: unknown history entries in {list(entry_ids)}")
        if use_old:
            rows.reverse()
        batch = uuid.uuid4().hex
        done: list[HistoryEntry] = []
        with self._write():
            for image_id, person_id, old_class, new_class, old_source, new_source in rows:
                name, source = (old_class, old_source) if use_old else (new_class, new_source)
                votes = self.image(image_id).votes if source == "caption" else None
                entry = self._apply_label(image_id, person_id, name, source or "human", votes, None, reason, batch)
                if entry:
                    done.append(entry)
        return done

    def revert(self, entry_ids: Sequence[int]) -> list[HistoryEntry]:
        """Undo: put back the labels these history entries replaced (recorded as new history)."""
        return self._replay(entry_ids, use_old=True, reason="undo")

    def reapply(self, entry_ids: Sequence[int]) -> list[HistoryEntry]:
        """Redo: apply these history entries' new labels again."""
        return self._replay(entry_ids, use_old=False, reason="redo")

    def undo_last(self) -> list[HistoryEntry]:
        """Undo the newest label change (one edit, bulk change or import) that is not undone yet, so repeated
        calls step further back. Each such undo names the action it reverted; undo and redo rows themselves and
        class merges (which `undo_class_op` reverts) are passed over, and so is an action whose labels have
        since been changed back by other means."""
        history = self.history(limit=-1)
        undone = {e.reason.removeprefix(UNDO_OF) for e in history if e.reason.startswith(UNDO_OF)}
        for key, action in _actions_newest_first(history):
            reason = action[0].reason
            if key in undone or reason.startswith("undo") or reason in ("redo", "merge"):
                continue
            reverted = self._replay([e.id for e in action], use_old=True, reason=f"{UNDO_OF}{key}")
            if reverted:
                return reverted
        return []

    def history(self, image_id: int | None = None, limit: int = 100) -> list[HistoryEntry]:
        sql = (
            "SELECT id, at, image_id, person_id, old_class, new_class, old_source, new_source, reason, batch"
            " FROM history"
        )
        args: tuple[Any, ...] = ()
        if image_id is not None:
            sql += " WHERE image_id = ?"
            args = (image_id,)
        rows = self._conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [HistoryEntry(*r) for r in rows]

    def person_labels(self, image_id: int) -> dict[int, Label]:
        rows = self._conn.execute(
            "SELECT l.person_id, c.name, l.source, l.votes, l.confidence, l.updated_at FROM labels l"
            " JOIN classes c ON c.id = l.class_id WHERE l.image_id = ? AND l.person_id IS NOT NULL",
            (image_id,),
        )
        return {r[0]: Label(image_id, r[0], r[1], r[2], loads(r[3], {}), r[4], r[5]) for r in rows}

    # -- views for training and statistics -------------------------------------------------------------------

    def snapshot(
        self, include_sources: Sequence[str] = ("caption", "human"), person_level: bool = False
    ) -> LabelSnapshot:
        """Freeze the current labels for a training run (labelled images, or labelled persons)."""
        with self._read():
            names, items = store_snapshot.read_items(self._conn, include_sources, person_level)
            revision = self.label_revision()
        return LabelSnapshot(names, items, revision, self.path)

    def image_items(self, image_ids: Sequence[int] | None = None) -> list[LabelledItem]:
        """Every image (or the ones asked for, once each; unknown ids are passed over) as an item with its person
        boxes, in image id order, for predicting; the class index is -1: these items carry no label."""
        with self._read():  # one snapshot across the chunks
            if image_ids is None:
                return store_snapshot.image_items(self._conn)
            items: list[LabelledItem] = []
            # Only the asked images and their boxes are read: at 100k images reading all of them and then
            # filtering held 200k boxes for the 20k images `harapp review` asks for (70 MB).
            for chunk, marks in id_chunks(image_ids):
                items += store_snapshot.image_items(self._conn, chunk, marks)
            return items

    def stats(self, check_files: bool = True) -> ProjectStats:
        """Counts of images, labels and persons; with check_files, also which photos are gone from disk
        (one directory listing per folder: see harapp.core.missing_files)."""
        conn = self._conn
        with self._read():
            per_class = {name: 0 for name in self.class_names()}
            for name, count in conn.execute(
                "SELECT c.name, COUNT(*) FROM labels l JOIN classes c ON c.id = l.class_id"
                " WHERE l.person_id IS NULL GROUP BY c.name"
            ):
                per_class[name] = count
            per_source: dict[str, int] = {s: 0 for s in SOURCES}
            per_source.update(
                conn.execute("SELECT source, COUNT(*) FROM labels WHERE person_id IS NULL GROUP BY source").fetchall()
            )
            images = self.count_images()
            # Votes but no image-level label (ImageRecord.uncertain), counted in SQL: loading 100k records took 2 s.
            uncertain = int(
                conn.execute(
                    "SELECT COUNT(*) FROM images i WHERE i.votes != '{}'"
                    " AND (SELECT SUM(value) FROM json_each(i.votes)) > 0"
                    " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = i.id AND l.person_id IS NULL)"
                ).fetchone()[0]
            )
            sources = self.sources()
            persons = int(conn.execute("SELECT COUNT(*) FROM persons").fetchone()[0])
            person_labels = int(conn.execute("SELECT COUNT(*) FROM labels WHERE person_id IS NOT NULL").fetchone()[0])
            revision = self.label_revision()
        labelled = sum(per_class.values())
        missing = self.missing_files() if check_files else None
        return ProjectStats(
            images=images,
            labelled=labelled,
            unlabelled=images - labelled,
            uncertain=uncertain,
            per_class=per_class,
            per_source=per_source,
            persons=persons,
            person_labels=person_labels,
            label_revision=revision,
            named_by_annotations=sum(_count(s["details"], "images") for s in sources),
            not_found_at_import=sum(_count(s["details"], "missing") for s in sources),
            missing=missing.count if missing is not None else None,
            missing_examples=tuple(str(p) for p in missing.paths[:5]) if missing is not None else (),
        )


def _count(details: Any, key: str) -> int:
    # Source details are JSON the importers wrote; an old or hand-edited project may lack a count.
    value = details.get(key, 0) if isinstance(details, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class _NeedsImmutable(Exception):  # noqa: N818 - internal signal, never leaves Project.open
    """SQLite could not open the file read-only beside a folder it cannot write; retry as immutable."""


UNDO_OF = "undo of "
"""Reason prefix of the history rows `Project.undo_last` writes, followed by the key of the action undone."""


def _actions_newest_first(history: Sequence[HistoryEntry]) -> Iterator[tuple[str, list[HistoryEntry]]]:
    """History (newest first) grouped by user action with a key: a bulk change, import or undo shares a batch;
    other rows stand alone."""
    action: list[HistoryEntry] = []
    for entry in history:
        if action and (entry.batch is None or entry.batch != action[0].batch):
            yield _action_key(action[0]), action
            action = []
        action.append(entry)
    if action:
        yield _action_key(action[0]), action


def _action_key(entry: HistoryEntry) -> str:
    return f"batch {entry.batch}" if entry.batch else f"entry {entry.id}"
