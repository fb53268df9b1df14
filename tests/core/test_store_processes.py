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
        project.set_label(image_id, name, "human")
        print(f"committed {image_id} {name}", flush=True)
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
    reported: dict[int, str] = {}
    assert writer.stdout is not None
    # Read a few rounds over all images, then kill it while it is still writing.
    for count, line in enumerate(writer.stdout, start=1):
        _, image_id, name = line.split()
        reported[int(image_id)] = name
        if count == 162:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    assert writer.returncode == -signal.SIGKILL

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Project.open(path) as reopened:
        labels = {image_id: reopened.image(image_id).label for image_id in reported}
        history_count = len(reopened.history(limit=100000))
    # The process may have committed one more label after its last report, never fewer.
    mismatched = {i: (reported[i], label.class_name) for i, label in labels.items() if label.class_name != reported[i]}
    assert len(mismatched) <= 1, mismatched
    assert history_count >= 162


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
