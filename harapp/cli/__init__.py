"""The harapp command: the GUI by default, and the same jobs without a screen as subcommands."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from harapp import __version__
from harapp.core.errors import HarappError

# Each module adds its subcommands; ml_commands pulls in torch, so it is imported only when present.
COMMAND_MODULES = (
    "harapp.cli.core_commands",
    "harapp.cli.ml_commands",
    "harapp.cli.review_commands",
    "harapp.cli.weights_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harapp",
        description="Human activity recognition in still photos. With no command, the desktop app starts.",
    )
    parser.add_argument("--version", action="version", version=f"harapp {__version__}")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo project (made offline)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui = subparsers.add_parser("gui", help="start the desktop app")
    gui.add_argument("project", nargs="?", type=Path)
    gui.add_argument("--demo", action="store_true", help="open the built-in demo project")
    gui.set_defaults(handler=_run_gui)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def _has_display() -> bool:
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


def _run_gui(args: argparse.Namespace) -> int:
    if not _has_display():
        print(
            "harapp: no display found (DISPLAY is unset). Run it on a desktop, under `xvfb-run harapp ...`,"
            " or use the commands in `harapp --help`.",
            file=sys.stderr,
        )
        if args.demo:
            from harapp.cli.core_commands import print_demo_stats

            return print_demo_stats()
        return 2
    from harapp.core.paths import cache_dir, config_dir, data_dir

    # The window keeps its state beside settings.json and thumbnails in the cache: say at once when one of
    # these folders cannot be used (HARAPP_CONFIG_DIR naming a file, say), not in a traceback from Qt code.
    config_dir(), cache_dir(), data_dir()
    from harapp.gui.app import run_gui

    return run_gui(args.project, demo=args.demo)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".harapp"):
        # `harapp my.harapp` opens that project in the app.
        argv.insert(0, "gui")
    parser = build_parser()
    args = argparse.Namespace()
    try:
        args = parser.parse_args(argv)  # --help and --version print here
        if args.command is None:
            args.project = None
        handler = getattr(args, "handler", _run_gui)
        code = int(handler(args) or 0)
        sys.stdout.flush()  # here, so a closed pipe is reported below rather than at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except SystemExit:
        # argparse's --help, --version and usage errors: flush before exit, while a closed pipe can be handled.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _stdout_closed()
        raise
    except HarappError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print("harapp: interrupted", file=sys.stderr)
        return 130
    except sqlite3.DatabaseError as exc:
        return _error(_database_error(args, exc))
    except OSError as exc:
        # The last line of defence: a file that cannot be read or written is the user's to fix, not a bug.
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")


def _error(message: str) -> int:
    with contextlib.suppress(BrokenPipeError):
        print(f"harapp: error: {message}", file=sys.stderr)
    return 1


def _stdout_closed() -> int:
    """The reader of our output went away (`harapp stats P | head -1`): stop quietly, as `cat` would.

    Python would otherwise report the broken pipe again when it flushes stdout at exit, so stdout is pointed
    at /dev/null first (the recipe of Python's signal module documentation)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a command stopped by a closed pipe


def _database_error(args: argparse.Namespace, exc: sqlite3.DatabaseError) -> str:
    from harapp.core.store import health as store_health

    project = getattr(args, "project", None)
    if store_health.is_damage(exc):
        if project is not None:
            store_health.forget(Path(project))
            return str(store_health.damaged(Path(project), str(exc)))
        return f"a project file is damaged ({exc}); `harapp repair PROJECT` copies what is readable"
    return f"{project or 'the project'}: cannot read or write the project file ({exc})"
