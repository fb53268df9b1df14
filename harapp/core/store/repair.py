"""`harapp repair P`: copy everything still readable from a damaged project file into a new one.

SQLite reports damage page by page, so each table is read in rowid ranges: a range that cannot be read is
split in two until the unreadable rows are isolated, and everything around them is kept. Rows are written
parents first with foreign keys on, so a label whose image was lost is rejected rather than left dangling.
The damaged file is only read, never changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harapp.core.errors import ProjectError
from harapp.core.store import health as store_health
from harapp.core.store.schema import APP_ID, SCHEMA_VERSION, migrate

TABLES = (
    "meta", "classes", "class_ops", "sources", "images", "persons", "labels", "history", "models", "predictions",
    "embeddings",
)  # fmt: skip
"""Parents before the rows that refer to them."""
CHUNK = 5000

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TableReport:
    table: str
    copied: int
    unreadable: int
    """Rows (or, where even the row count is lost, row ranges) that could not be read."""
    rejected: int
    """Rows read but refused by the new file: they refer to a row that was lost, or their values are garbage."""


@dataclass(frozen=True)
class RepairReport:
    source: Path
    target: Path
    tables: tuple[TableReport, ...]

    @property
    def lost(self) -> int:
        return sum(t.unreadable + t.rejected for t in self.tables)


def default_target(source: Path) -> Path:
    return source.with_name(f"{source.stem}.repaired{source.suffix or '.harapp'}")


def _open_source(path: Path) -> sqlite3.Connection:
    for extra in ("", "&immutable=1"):  # immutable when the folder is read-only (see store_health)
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{extra}", uri=True)
        try:
            conn.execute("SELECT name FROM sqlite_master").fetchall()
            return conn
        except sqlite3.DatabaseError as exc:
            conn.close()
            if not store_health.is_read_only_failure(exc):
                raise ProjectError(
                    f"{path}: nothing can be recovered: even its list of tables is unreadable ({exc})"
                ) from exc
    raise ProjectError(f"{path}: cannot open the project file")


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    try:
        return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        return []


def _bounds(conn: sqlite3.Connection, table: str) -> list[tuple[int, int]]:
    """The rowid ranges to read: chunks between the smallest and largest rowid, or the whole range of
    rowids when even those are unreadable (the b-tree's edges are damaged)."""
    try:
        low, high = conn.execute(f"SELECT MIN(rowid), MAX(rowid) FROM {table}").fetchone()
    except sqlite3.DatabaseError:
        return [(-(2**62), 2**62)]
    if low is None:
        return []
    return [(start, min(int(high), start + CHUNK - 1)) for start in range(int(low), int(high) + 1, CHUNK)]


class _Salvage:
    """Reads rows in rowid ranges, halving a range that cannot be read; gives up after MAX_PROBES reads
    (a damaged root page makes every range unreadable, and halving 2**63 rowids would never end)."""

    MAX_PROBES = 100_000

    def __init__(self, conn: sqlite3.Connection, sql: str) -> None:
        self.conn = conn
        self.sql = sql
        self.probes = 0
        self.lost = 0

    def rows(self, low: int, high: int) -> list[tuple[object, ...]]:
        found: list[tuple[object, ...]] = []
        pending = [(low, high)]
        while pending:
            lo, hi = pending.pop()
            if self.probes >= self.MAX_PROBES:
                self.lost += 1  # a whole range given up on
                continue
            self.probes += 1
            try:
                found += self.conn.execute(self.sql, (lo, hi)).fetchall()
            except sqlite3.DatabaseError:
                if lo == hi:
                    self.lost += 1
                else:
                    mid = (lo + hi) // 2
                    pending += [(mid + 1, hi), (lo, mid)]
        return found


def _copy_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str, progress: Progress | None) -> TableReport:
    theirs = _columns(src, table)
    ours = _columns(dst, table)
    columns = [c for c in ours if c in theirs]
    if not columns:
        return TableReport(table, 0, 1 if table in _existing_tables(src) else 0, 0)
    names = ", ".join(columns)
    salvage = _Salvage(src, f"SELECT rowid, {names} FROM {table} WHERE rowid BETWEEN ? AND ? ORDER BY rowid")
    write = f"INSERT INTO {table} (rowid, {names}) VALUES ({', '.join('?' * (len(columns) + 1))})"
    chunks = _bounds(src, table)
    copied = rejected = 0
    for done, (low, high) in enumerate(chunks, 1):
        for row in salvage.rows(low, high):
            try:
                dst.execute(write, row)
                copied += 1
            except (sqlite3.DatabaseError, OverflowError, ValueError):
                rejected += 1
        if progress is not None:
            progress(f"copying {table}", done, len(chunks))
    return TableReport(table, copied, salvage.lost, rejected)


def _existing_tables(conn: sqlite3.Connection) -> set[str]:
    try:
        return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return set()


def repair_project(source: Path, target: Path | None = None, progress: Progress | None = None) -> RepairReport:
    """Copy what is readable of `source` into a new project file (default: <name>.repaired.harapp)."""
    source = Path(source)
    target = Path(target) if target is not None else default_target(source)
    if not source.is_file():
        raise ProjectError(f"{source}: no such project file")
    if target.exists():
        raise ProjectError(f"{target}: already exists; remove it or choose another name with --out")
    src = _open_source(source)
    try:
        if "meta" not in _existing_tables(src):
            raise ProjectError(f"{source}: not a harapp project (no harapp tables could be read)")
        try:
            dst = sqlite3.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise ProjectError(f"{target}: cannot create the repaired copy there ({exc})") from exc
        try:
            dst.execute("PRAGMA foreign_keys = ON")
            dst.execute("BEGIN")
            migrate(dst, 0)
            reports = tuple(_copy_table(src, dst, table, progress) for table in TABLES)
            dst.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('app', ?)", (APP_ID,))
            dst.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('label_revision', '0')")
            # The copy's revision moves on, so models trained before the damage count as trained on older labels.
            dst.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'label_revision'")
            dst.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            dst.execute("COMMIT")
            store_health.quick_check(dst, target)
        except BaseException:
            dst.close()
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            raise
        dst.close()
    finally:
        src.close()
    return RepairReport(source, target, reports)
