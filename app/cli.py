"""`modelview`: the Faust app's command line, plus `stack` and `demo`."""

from __future__ import annotations

import argparse
import json
import sys

from app.adapters.restore import RestoreError
from app.domain.segments import LogGap
from app.settings import Settings, SettingsError
from app.stack import Stack, StackError

OURS = ("stack", "demo", "rebuild")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in OURS:
        try:
            sys.exit(_ours(args))
        except (SettingsError, StackError, LogGap, RestoreError) as exc:
            print(f"modelview: {exc}", file=sys.stderr)
            sys.exit(2)
    from app.bootstrap import default_app

    sys.argv = ["modelview", *args]
    default_app().main()


def _ours(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="modelview")
    sub = parser.add_subparsers(dest="command", required=True)
    stack = sub.add_parser("stack", help="the local broker and object store")
    stack.add_argument("action", choices=["up", "down", "status"])
    demo = sub.add_parser(
        "demo", help="start the stack and a worker, publish events, show the views"
    )
    demo.add_argument("--events", type=int, default=2000)
    demo.add_argument("--keep", action="store_true", help="leave the worker and stack running")
    rebuild = sub.add_parser(
        "rebuild", help="fold the whole log again (cold segments, then Kafka) and compare"
    )
    rebuild.add_argument(
        "--no-compare", action="store_true", help="fold only; do not read the live views"
    )
    ns = parser.parse_args(args)
    settings = Settings.from_env()
    if ns.command == "rebuild":
        from app.rebuild import run

        return run(settings, compare=not ns.no_compare)
    if ns.command == "stack":
        local = Stack(settings)
        if ns.action == "up":
            restored = local.up()
            if restored:
                print(f"the broker had lost its log: restored {restored} records from S3")
            print(json.dumps(local.status(), indent=2))
        elif ns.action == "down":
            local.down()
            print("stack stopped")
        else:
            status = local.status()
            print(json.dumps(status, indent=2))
            return 0 if all(s["listening"] for s in status.values()) else 1
        return 0
    from app.demo import run_demo

    return run_demo(settings, events=ns.events, keep=ns.keep)
