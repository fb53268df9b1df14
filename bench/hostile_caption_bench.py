"""How long a 1 MB caption takes to parse, in several hostile shapes (issue 11, bad input 1).

Run: PYTHONPATH=. .venv/bin/python bench/hostile_caption_bench.py
"""

from __future__ import annotations

import time

from harapp.core.importers.captions import caption_votes

SHAPES = {
    "non-voting verbs, no full stop": "a dog sitting on a couch and ",
    "one verb after another": "sat ",
    "long subjects": "the cat with the long tail near the red car walking ",
    "words without verbs": "a man and a woman ",
    "short sentences": "a dog sits. ",
    "whitespace runs": "stand" + " " * 300,
}


def main() -> None:
    size = 1_000_000
    for name, shape in SHAPES.items():
        text = (shape * (size // len(shape) + 1))[:size]
        start = time.perf_counter()
        caption_votes(text)
        print(f"{name:<32} {len(text):>9,} chars  {time.perf_counter() - start:7.3f} s")


if __name__ == "__main__":
    main()
