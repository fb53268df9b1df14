"""The project file's SQL schema and its migrations, one function per schema version."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

APP_ID = "harapp"

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE classes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL,
    concepts TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE class_ops (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    op TEXT NOT NULL,
    payload TEXT NOT NULL,
    undone_at TEXT
);
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    root TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    imported_at TEXT NOT NULL
);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    rel_path TEXT NOT NULL,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    coco_id INTEGER,
    captions TEXT NOT NULL DEFAULT '[]',
    votes TEXT NOT NULL DEFAULT '{}',
    extra TEXT NOT NULL DEFAULT '{}',
    added_at TEXT NOT NULL,
    UNIQUE (source_id, rel_path)
);
CREATE INDEX images_coco_id ON images (coco_id);
CREATE TABLE persons (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    coco_id INTEGER,
    x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,
    keypoints TEXT,
    area REAL NOT NULL
);
CREATE INDEX persons_image ON persons (image_id);
CREATE UNIQUE INDEX persons_coco_id ON persons (image_id, coco_id) WHERE coco_id IS NOT NULL;
CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    person_id INTEGER REFERENCES persons(id) ON DELETE CASCADE,
    class_id INTEGER NOT NULL REFERENCES classes(id),
    source TEXT NOT NULL CHECK (source IN ('caption', 'human', 'model')),
    votes TEXT NOT NULL DEFAULT '{}',
    confidence REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- NULL person ids are distinct to a plain UNIQUE, so key the image-level label on 0.
CREATE UNIQUE INDEX labels_target ON labels (image_id, IFNULL(person_id, 0));
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    image_id INTEGER NOT NULL,
    person_id INTEGER,
    old_class TEXT, new_class TEXT,
    old_source TEXT, new_source TEXT,
    reason TEXT NOT NULL,
    batch TEXT
);
CREATE INDEX history_image ON history (image_id);
CREATE TRIGGER history_append_only_update BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER history_append_only_delete BEFORE DELETE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    label_revision INTEGER NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    config TEXT NOT NULL DEFAULT '{}',
    active INTEGER NOT NULL DEFAULT 0
);
"""

# Version 2 adds what the ML engine caches in the project.
_V2 = """
CREATE TABLE predictions (
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    class_name TEXT NOT NULL,
    confidence REAL NOT NULL,
    probs TEXT NOT NULL,
    PRIMARY KEY (model_id, image_id)
);
CREATE TABLE embeddings (
    model_key TEXT NOT NULL,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    PRIMARY KEY (model_key, image_id)
);
"""


# Version 3 keeps the label-quality scores (guided curation) so a reopened project shows them at once.
# person_id 0 stands for the image itself: a NULL would make every row distinct in the primary key.
_V3 = """
CREATE TABLE label_quality (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL DEFAULT 0,
    queue TEXT NOT NULL,
    given_class TEXT,
    suggested_class TEXT NOT NULL,
    score REAL NOT NULL,
    probs TEXT NOT NULL,
    likely_wrong INTEGER NOT NULL DEFAULT 0,
    scorer TEXT NOT NULL,
    label_revision INTEGER NOT NULL,
    PRIMARY KEY (image_id, person_id, queue)
);
CREATE INDEX label_quality_by_score ON label_quality (queue, score);
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the caller's transaction, so run statement by statement.
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: lambda conn: _run_script(conn, _V1),
    2: lambda conn: _run_script(conn, _V2),
    3: lambda conn: _run_script(conn, _V3),
}
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(conn: sqlite3.Connection, from_version: int, to_version: int = SCHEMA_VERSION) -> None:
    """Apply migrations from_version+1 .. to_version; the caller holds the write transaction."""
    for version in range(from_version + 1, to_version + 1):
        MIGRATIONS[version](conn)
        conn.execute(f"PRAGMA user_version = {int(version)}")
