"""`harapp weights add | list | remove`: CLIP weights a user brought, registered so training finds them offline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harapp.ml.weights_registry import RegisteredWeights

FORMATS_HELP = (
    "open_clip_pytorch_model.bin (or any open_clip .bin/.pt/.pth), open_clip_model.safetensors, or OpenAI's ViT-B-32.pt"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Reading a file needs torch; the handlers import it, so `harapp --help` stays fast.
    p = subparsers.add_parser(
        "weights",
        help="register local CLIP weights so CLIP trains offline; list or remove them",
        description="CLIP weights downloaded elsewhere, checked and kept in harapp's weights cache. Afterwards "
        "CLIP zero-shot, linear probe and fine-tune with that model and pretrained tag need no network and no "
        "--weights.",
    )
    actions = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add", help="check a CLIP weights file and register it", description=f"FILE: {FORMATS_HELP}."
    )
    add.add_argument("file", type=Path, metavar="FILE")
    add.add_argument(
        "--model",
        metavar="NAME",
        help="open_clip architecture, e.g. ViT-B-32 (default: the one the file fits, found from its tensors)",
    )
    add.add_argument(
        "--pretrained",
        metavar="TAG",
        help="open_clip pretrained tag, e.g. openai or laion2b_s34b_b79k (default: told by the file's name or "
        "format where it can be; it decides QuickGELU)",
    )
    add.set_defaults(handler=cmd_add)

    listing = actions.add_parser("list", help="show the registered CLIP weights")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=cmd_list)

    remove = actions.add_parser("remove", help="delete registered CLIP weights")
    remove.add_argument("model", metavar="MODEL", help="open_clip architecture, as `harapp weights list` shows it")
    remove.add_argument("pretrained", metavar="TAG", help="pretrained tag, as `harapp weights list` shows it")
    remove.set_defaults(handler=cmd_remove)


def _size(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def _describe(entry: RegisteredWeights) -> str:
    return f"{entry.model} (pretrained {entry.pretrained!r}, {entry.variant})"


def cmd_add(args: argparse.Namespace) -> int:
    from harapp.ml.weights_registry import register_clip_file

    print(f"checking {args.file} ...", file=sys.stderr)
    done = register_clip_file(args.file, model=args.model, pretrained=args.pretrained)
    entry = done.entry
    print(
        f"registered {_describe(entry)} from {args.file} ({entry.source_format}, "
        f"{entry.parameters / 1e6:.1f} M parameters)"
        + (", replacing the file registered before" if done.replaced else "")
    )
    print(f"stored as {entry.path} ({_size(entry.size_bytes)})")
    print(
        f"CLIP training with --clip-model {entry.model} --clip-pretrained {entry.pretrained} "
        "(or those in the Train panel) now uses it, offline."
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from harapp.ml.weights_registry import list_registered, registry_dir

    entries = list_registered()
    if args.json:
        for entry in entries:
            print(json.dumps(entry.to_dict()))
        return 0
    if not entries:
        print(f"No CLIP weights registered (in {registry_dir()}). Add some with `harapp weights add FILE`.")
        return 0
    rows = [("model", "pretrained", "variant", "size", "added", "from")]
    for e in entries:
        origin = f"damaged: {e.problem}" if e.problem else f"{Path(e.source_file).name} ({e.source_format})"
        rows.append((e.model, e.pretrained, e.variant, _size(e.size_bytes), e.added_at[:10], origin))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5])
    print(f"\nfolder: {registry_dir()}")
    return 1 if any(e.problem for e in entries) else 0


def cmd_remove(args: argparse.Namespace) -> int:
    from harapp.ml.weights_registry import remove_registered

    entry = remove_registered(args.model, args.pretrained)
    print(f"removed {_describe(entry)}: {entry.path}")
    return 0
