"""One rank of two (spawned by test_distributed, gloo on the CPU): rank 0's own work (leader_only) and work done on
every rank (agreed), ending well, cancelled or failed; what each call gave on this rank goes to a JSON file.

A module of its own: a spawned process imports it, and it imports little.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist

from harapp.ml import distributed
from harapp.ml.errors import TrainingCancelled


def agreements(rank: int, store: str, folder: str) -> None:
    """One of two gloo processes: how leader_only and agreed end on each rank, written to FOLDER/rank<N>.json."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)

    def outcome(call: Callable[[], object]) -> str:
        try:
            return f"value {call()}"
        except TrainingCancelled:
            return "cancelled"
        except distributed.PeerFailed:
            return "peer failed"
        except RuntimeError as exc:
            return f"failed: {exc}"

    def on_leader(what: str) -> object:
        assert distributed.ranks().world == 1, "rank 0 works alone: its loaders take every item"
        if what == "cancel":
            raise TrainingCancelled()
        if what == "fail":
            raise RuntimeError("no photos")
        return "people"

    def on_rank_1(what: str) -> object:
        if distributed.ranks().rank == 1 and what == "cancel":
            raise TrainingCancelled()
        return distributed.ranks().rank

    seen = [outcome(lambda w=w: distributed.leader_only(lambda: on_leader(w))) for w in ("ok", "cancel", "fail")]
    seen += [outcome(lambda: distributed.leader_only(lambda: "mine", share=False))]
    seen += [outcome(lambda w=w: distributed.agreed(lambda: on_rank_1(w))) for w in ("ok", "cancel")]
    (Path(folder) / f"rank{rank}.json").write_text(json.dumps(seen))
    dist.destroy_process_group()
