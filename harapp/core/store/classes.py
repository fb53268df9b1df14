"""The label schema as data: add, rename and merge classes, each recorded so it can be undone."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from harapp.core.errors import LabelError
from harapp.core.store.base import inserted_id
from harapp.core.types import ClassInfo, Source

# (image_id, person_id, old_class, new_class, source, reason, batch) -> writes one history row
RecordChange = Callable[[int, "int | None", "str | None", "str | None", Source, str, str], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _check_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise LabelError("a class name cannot be empty")
    if len(cleaned) > 64:
        raise LabelError(f"class name {cleaned[:20]!r}... is longer than 64 characters")
    return cleaned


def list_classes(conn: sqlite3.Connection) -> list[ClassInfo]:
    rows = conn.execute("SELECT id, name, position, concepts FROM classes ORDER BY position, id")
    return [ClassInfo(r[0], r[1], r[2], tuple(json.loads(r[3]))) for r in rows]


def class_id(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else None


def _require(conn: sqlite3.Connection, name: str) -> ClassInfo:
    for info in list_classes(conn):
        if info.name == name:
            return info
    names = ", ".join(c.name for c in list_classes(conn))
    raise LabelError(f"unknown class {name!r}; classes are: {names}")


def _renumber(conn: sqlite3.Connection) -> None:
    for position, info in enumerate(list_classes(conn)):
        conn.execute("UPDATE classes SET position = ? WHERE id = ?", (position, info.id))


def insert_class(
    conn: sqlite3.Connection,
    name: str,
    concepts: Sequence[str] | None = None,
    position: int | None = None,
    class_id_: int | None = None,
) -> ClassInfo:
    name = _check_name(name)
    if class_id(conn, name) is not None:
        raise LabelError(f"class {name!r} already exists")
    if position is None:
        position = int(conn.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM classes").fetchone()[0])
    # A new class's caption concept is its own name, so caption rules can learn words for it later.
    concepts = tuple(concepts) if concepts else (name.lower(),)
    cur = conn.execute(
        "INSERT INTO classes (id, name, position, concepts) VALUES (?, ?, ?, ?)",
        (class_id_, name, position, json.dumps(list(concepts))),
    )
    return ClassInfo(inserted_id(cur), name, position, concepts)


def _record_op(conn: sqlite3.Connection, op: str, payload: dict[str, Any]) -> int:
    cur = conn.execute("INSERT INTO class_ops (at, op, payload) VALUES (?, ?, ?)", (_now(), op, json.dumps(payload)))
    return inserted_id(cur)


def add_class(conn: sqlite3.Connection, name: str) -> ClassInfo:
    info = insert_class(conn, name)
    _record_op(conn, "add", {"id": info.id, "name": info.name})
    return info


def rename_class(conn: sqlite3.Connection, old: str, new: str) -> None:
    info = _require(conn, old)
    new = _check_name(new)
    if new == old:
        return
    if class_id(conn, new) is not None:
        raise LabelError(f"class {new!r} already exists; merge the two classes instead")
    conn.execute("UPDATE classes SET name = ? WHERE id = ?", (new, info.id))
    _record_op(conn, "rename", {"id": info.id, "old": old, "new": new})


def merge_classes(conn: sqlite3.Connection, names: Sequence[str], into: str, record: RecordChange) -> int:
    """Move every label of `names` to `into` (created when new) and drop the merged classes."""
    into = _check_name(into)
    merged = [_require(conn, n) for n in dict.fromkeys(names)]
    if len(merged) < 2 and all(m.name == into for m in merged):
        raise LabelError("a merge needs at least two classes")
    target_before = next((c for c in list_classes(conn) if c.name == into), None)
    sources = [m for m in merged if m.name != into]
    batch = uuid.uuid4().hex
    if target_before is None:
        target = insert_class(
            conn,
            into,
            position=min(m.position for m in merged),
            concepts=tuple(dict.fromkeys(c for m in merged for c in m.concepts)),
        )
    else:
        target = target_before
        concepts = tuple(dict.fromkeys([*target.concepts, *(c for m in sources for c in m.concepts)]))
        conn.execute("UPDATE classes SET concepts = ? WHERE id = ?", (json.dumps(list(concepts)), target.id))
    moved: list[list[int]] = []
    for source in sources:
        rows = conn.execute(
            "SELECT id, image_id, person_id, source FROM labels WHERE class_id = ?", (source.id,)
        ).fetchall()
        for label_id, image_id, person_id, label_source in rows:
            moved.append([label_id, source.id])
            record(image_id, person_id, source.name, into, label_source, "merge", batch)
        conn.execute("UPDATE labels SET class_id = ? WHERE class_id = ?", (target.id, source.id))
        conn.execute("DELETE FROM classes WHERE id = ?", (source.id,))
    _renumber(conn)
    return _record_op(
        conn,
        "merge",
        {
            "batch": batch,
            "sources": [
                {"id": s.id, "name": s.name, "position": s.position, "concepts": list(s.concepts)} for s in sources
            ],
            "target": {
                "id": target.id,
                "name": into,
                "created": target_before is None,
                "concepts": list(target_before.concepts) if target_before else [],
            },
            "labels": moved,
        },
    )


def undo_last(conn: sqlite3.Connection, record: RecordChange) -> str:
    row = conn.execute(
        "SELECT id, op, payload FROM class_ops WHERE undone_at IS NULL ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        raise LabelError("there is no class change to undo")
    op_id, op, payload = row[0], row[1], json.loads(row[2])
    if op == "add":
        if conn.execute("SELECT 1 FROM labels WHERE class_id = ?", (payload["id"],)).fetchone():
            raise LabelError(f"class {payload['name']!r} already has labels; relabel them before undoing its add")
        conn.execute("DELETE FROM classes WHERE id = ?", (payload["id"],))
        text = f"removed class {payload['name']!r}"
    elif op == "rename":
        if class_id(conn, payload["old"]) is not None:
            raise LabelError(f"cannot rename back: a class {payload['old']!r} exists again")
        conn.execute("UPDATE classes SET name = ? WHERE id = ?", (payload["old"], payload["id"]))
        text = f"renamed {payload['new']!r} back to {payload['old']!r}"
    elif op == "merge":
        text = _undo_merge(conn, payload, record)
    else:
        raise LabelError(f"unknown class operation {op!r} in the project")
    conn.execute("UPDATE class_ops SET undone_at = ? WHERE id = ?", (_now(), op_id))
    _renumber(conn)
    return text


def _undo_merge(conn: sqlite3.Connection, payload: dict[str, Any], record: RecordChange) -> str:
    target = payload["target"]
    target_name = conn.execute("SELECT name FROM classes WHERE id = ?", (target["id"],)).fetchone()
    if target_name is None:
        raise LabelError(f"cannot undo the merge into {target['name']!r}: that class is gone")
    for source in payload["sources"]:
        if class_id(conn, source["name"]) is not None:
            raise LabelError(f"cannot undo the merge: a class {source['name']!r} exists again")
        # Shift later classes so the restored one takes its old place.
        conn.execute("UPDATE classes SET position = position + 1 WHERE position >= ?", (source["position"],))
        insert_class(conn, source["name"], source["concepts"], source["position"], source["id"])
    names = {s["id"]: s["name"] for s in payload["sources"]}
    batch = uuid.uuid4().hex
    for label_id, old_class_id in payload["labels"]:
        row = conn.execute(
            "SELECT image_id, person_id, source, class_id FROM labels WHERE id = ?", (label_id,)
        ).fetchone()
        # A label relabelled or deleted since the merge keeps its newer value.
        if row is None or row[3] != target["id"]:
            continue
        conn.execute("UPDATE labels SET class_id = ? WHERE id = ?", (old_class_id, label_id))
        record(row[0], row[1], target_name[0], names[old_class_id], row[2], "undo merge", batch)
    if target["created"]:
        if conn.execute("SELECT 1 FROM labels WHERE class_id = ?", (target["id"],)).fetchone() is None:
            conn.execute("DELETE FROM classes WHERE id = ?", (target["id"],))
    else:
        conn.execute("UPDATE classes SET concepts = ? WHERE id = ?", (json.dumps(target["concepts"]), target["id"]))
    return f"split {target_name[0]!r} back into {', '.join(repr(s['name']) for s in payload['sources'])}"
