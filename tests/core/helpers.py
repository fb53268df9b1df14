"""Small builders shared by the core tests."""

from __future__ import annotations

from pathlib import Path

from harapp.core.store import Project


def project_with_images(tmp_path: Path, n: int = 6, name: str = "p.harapp") -> tuple[Project, list[int]]:
    project = Project.create(tmp_path / name)
    source = project.add_source("test", tmp_path)
    ids = [project.upsert_image(source, f"img{i}.jpg", 64, 48, coco_id=1000 + i) for i in range(n)]
    return project, ids
