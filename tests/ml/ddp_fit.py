"""One rank of a torchrun job that trains through the Python API with settings the CLI does not expose (no early
stopping), and has rank 0 print the run's history as JSON (for test_distributed).

Run by torchrun: `torchrun --nproc-per-node=2 tests/ml/ddp_fit.py PROJECT CHECKPOINT CONFIG_JSON [CLIP_CONFIG]`;
CLIP_CONFIG is an open_clip model config file to register first (the tests' tiny CLIP).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harapp.core.store import Project
from harapp.ml.config import TrainConfig
from harapp.ml.distributed import DistributedJob, from_leader
from harapp.ml.trainer import train


def main(project_path: Path, checkpoint: Path, config: TrainConfig) -> int:
    with DistributedJob(config.device) as job:

        def body() -> int:
            snapshot = None
            if job.ranks.is_leader:
                with Project.open(project_path, readonly=True) as project:
                    snapshot = project.snapshot()
            snapshot = from_leader(snapshot)
            assert snapshot is not None
            result = train(config, snapshot, checkpoint)
            if job.ranks.is_leader:
                assert result.metrics is not None
                print(json.dumps({"accuracy": result.metrics.accuracy, "history": list(result.history)}))
            return 0

        return job.run(body)


if __name__ == "__main__":
    if len(sys.argv) > 4:
        import open_clip

        open_clip.add_model_config(Path(sys.argv[4]))
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), TrainConfig.from_dict(json.loads(sys.argv[3]))))
