"""Is a project file healthy, and may harapp write to it? The checks Project.open runs.

Damage: `PRAGMA quick_check` reads every page of the file. On a generated project of 100,000 images it takes
0.2 s (154 MB file) and 0.6 s with cached embeddings (705 MB), warm; from a cold disk it is bound by reading
the whole file. That is too slow to pay on every `harapp label`, so it runs only when the file is not the one
harapp last left healthy: after a clean close harapp records the file's size, mtime, inode and device in
the cache folder, and an open that finds the same fingerprint skips the check (one stat() instead). Pages that
go bad without any write (failing media) keep the fingerprint; SQLite then reports the damage when it reads
them, and that error is reported as damage too (see is_damage and the CLI's handler).

Read-only: a project whose file or folder is not writable opens read-only and says why. SQLite needs to
create the -shm file beside a WAL-mode database even to read it; where it cannot, the file is opened as
immutable, which is safe as long as no -wal file holds changes not yet merged into it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from harapp.core.errors import ProjectDamagedError

SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB = 3, 8, 10, 11, 14, 26
MAX_REMEMBERED = 200


def error_code(exc: BaseException) -> int:
    """SQLite's primary result code of an sqlite3 error (0 when unknown)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_damage(exc: BaseException) -> bool:
    """Does this error mean the file's pages are damaged (rather than locked, full or read-only)?"""
    return isinstance(exc, sqlite3.DatabaseError) and error_code(exc) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def is_read_only_failure(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and error_code(exc) in (SQLITE_READONLY, SQLITE_CANTOPEN)


def damaged(path: Path, detail: str) -> ProjectDamagedError:
    return ProjectDamagedError(
        f"{path}: the project file is damaged ({detail}). `harapp repair {path}` copies everything still "
        "readable into a new project file and leaves this one as it is."
    )


def why_read_only(path: Path) -> str | None:
    """Why harapp cannot write this project (None when it can): a read-only file, or a read-only folder (where
    SQLite could not create its journal files)."""
    if not os.access(path, os.W_OK):
        return "the project file is read-only"
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is read-only"
    return None


def unmerged_wal(path: Path) -> Path | None:
    """The -wal file beside a project when it holds changes not yet merged into the project file."""
    wal = Path(f"{path}-wal")
    try:
        return wal if wal.stat().st_size > 0 else None
    except OSError:
        return None


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """PRAGMA quick_check; ProjectDamagedError naming the first problem it finds."""
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        raise damaged(path, str(exc)) from exc
    problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
    if problems:
        raise damaged(path, "; ".join(problems)[:300])


# -- the fingerprints of files harapp left healthy ------------------------------------------------------------


def _fingerprint(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def _records_file() -> Path:
    from harapp.core.paths import cache_dir

    return cache_dir() / "healthy-projects.json"


def _load() -> dict[str, list[int]]:
    try:
        data = json.loads(_records_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def known_healthy(path: Path) -> bool:
    """Is this exactly the file harapp last closed as healthy (same size, mtime, inode and device)?"""
    fingerprint = _fingerprint(path)
    return fingerprint is not None and _load().get(str(Path(path).resolve())) == fingerprint


def _save(records: dict[str, list[int]]) -> None:
    # Written beside and renamed, but not fsynced: a record lost in a crash only costs one more quick_check.
    target = _records_file()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(records), encoding="utf-8")
    os.replace(tmp, target)


def remember_healthy(path: Path) -> None:
    """Record the file's fingerprint after a clean close; best effort (a cache folder may be read-only)."""
    fingerprint = _fingerprint(path)
    if fingerprint is None:
        return
    try:
        records = _load()
        key = str(Path(path).resolve())
        if records.get(key) == fingerprint:
            return  # a read-only session: nothing changed
        records.pop(key, None)
        records[key] = fingerprint
        _save(dict(list(records.items())[-MAX_REMEMBERED:]))
    except OSError:
        return


def forget(path: Path) -> None:
    """Drop a file's record (its damage was just seen), so the next open checks it in full."""
    try:
        records = _load()
        if records.pop(str(Path(path).resolve()), None) is not None:
            _save(records)
    except OSError:
        return
