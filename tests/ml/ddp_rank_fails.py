"""`harapp train` as a torchrun rank, except that rank 1 fails in its second training step (for test_distributed).

Run as a script by torchrun: `torchrun --nproc-per-node=2 tests/ml/ddp_rank_fails.py PROJECT ...`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

from harapp.cli import main
from harapp.ml import loop

FAILING_RANK = "1"
MESSAGE = "injected failure in the second training step"


def _failing_make_loader(*args: Any, **kwargs: Any) -> Any:
    batches = _real_make_loader(*args, **kwargs)
    if not kwargs["train"]:  # loop calls make_loader with train= by name
        return batches

    class FailsAtStepTwo:
        def __len__(self) -> int:
            return len(batches)

        def __iter__(self) -> Iterator[Any]:
            for step, batch in enumerate(batches, start=1):
                if step == 2:
                    raise RuntimeError(MESSAGE)
                yield batch

    return FailsAtStepTwo()


_real_make_loader = loop.make_loader
if os.environ.get("RANK") == FAILING_RANK:
    loop.make_loader = _failing_make_loader

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
