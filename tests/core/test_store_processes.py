"""The store against real processes: a writer killed mid-stream, and two processes on one project."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harapp.core.store import Project
from tests.core.helpers import project_with_images

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    from harapp.core.store import Project
    classes = ["walking", "running", "sitting", "standing"]
    project = Project.open(sys.argv[1])
    ids = project.image_ids()
    step = 0
    while True:
        image_id = ids[step % len(ids)]
        name = classes[(step // len(ids) + image_id) % len(classes)]
        project.set_label(image_id, name, "human", reason=f"step {step}")
        print(f"committed {step} {image_id} {name}", flush=True)
        step += 1
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_mid_stream_loses_no_reported_label(tmp_path: Path) -> None:
    project, _ = project_with_images(tmp_path, n=25)
    project.close()
    path = tmp_path / "p.harapp"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=_env())
    reported: dict[int, tuple[int, str]] = {}
    assert writer.stdout is not None
    # Read a few rounds over all images, then kill it while it is still writing. The writer runs ahead of what
    # has been read (the pipe buffers its lines), so the check is on the append-only history, not the last label.
    for count, line in enumerate(writer.stdout, start=1):
        _, step, image_id, name = line.split()
        reported[int(step)] = (int(image_id), name)
        if count == 162:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    assert writer.returncode == -signal.SIGKILL

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Project.open(path) as reopened:
        history = reopened.history(limit=1_000_000)
        steps = [e for e in history if e.reason.startswith("step ")]
        committed = {int(e.reason.split()[1]): (e.image_id, e.new_class) for e in steps}
        missing = {step: change for step, change in reported.items() if committed.get(step) != change}
        assert not missing, f"reported commits lost: {missing}"
        # Each image's label is the one its newest history entry set: no torn or half-applied write.
        newest: dict[int, str] = {}
        for entry in sorted(history, key=lambda e: e.id):
            newest[entry.image_id] = entry.new_class
        for image_id, name in newest.items():
            assert reopened.image(image_id).label.class_name == name


def test_a_second_process_reads_safely_while_the_first_writes(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path, n=3)
    project.set_label(ids[0], "sitting")
    reader = textwrap.dedent(
        """
        import sys
        from harapp.core.store import Project
        with Project.open(sys.argv[1], readonly=True) as p:
            print(p.image(int(sys.argv[2])).label.class_name)
        """
    )
    # Hold an open write transaction in this process while another process reads.
    with project.transaction():
        project.set_label(ids[0], "walking")
        out = subprocess.run(
            [sys.executable, "-c", reader, str(tmp_path / "p.harapp"), str(ids[0])],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "sitting"  # the committed value, never a half-written one
    assert project.image(ids[0]).label.class_name == "walking"


def test_a_second_writer_gets_a_clear_message_when_the_project_stays_locked(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path, n=3)
    writer = textwrap.dedent(
        """
        import sys
        from harapp.core.errors import ProjectLockedError
        from harapp.core.store import Project
        with Project.open(sys.argv[1]) as p:
            try:
                p.set_label(int(sys.argv[2]), "running")
            except ProjectLockedError as exc:
                print("LOCKED:", exc)
            else:
                print("WROTE")
        """
    )
    with project.transaction():
        project.set_label(ids[1], "standing")
        out = subprocess.run(
            [sys.executable, "-c", writer, str(tmp_path / "p.harapp"), str(ids[1])],
            capture_output=True,
            text=True,
            env={**_env(), "HARAPP_BUSY_TIMEOUT_MS": "300"},
            timeout=60,
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("LOCKED:") and "another process is writing" in out.stdout
    assert str(tmp_path / "p.harapp") in out.stdout
    # Once the lock is gone, the second process writes normally, and nothing was corrupted.
    out = subprocess.run(
        [sys.executable, "-c", writer, str(tmp_path / "p.harapp"), str(ids[1])],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert out.stdout.strip() == "WROTE"
    assert project.image(ids[1]).label.class_name == "running"
    assert project._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
