"""Command line: run, classify, check-config, bench, ha-remove. The only module that configures logging."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import cv2
import numpy as np

from edge_classifier import __version__
from edge_classifier.catalogue import cli as catalogue_cli
from edge_classifier.config.settings import Config, ConfigSource, mqtt_password, state_directory
from edge_classifier.errors import EdgeClassifierError, InputError
from edge_classifier.learning import cli as learning_cli

logger = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block; exit 1 ("other"), as documented.
        self.exit(1, f"{self.prog}: error: {message} (see --help)\n")


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


_positive = _at_least(1)


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, help="YAML configuration file (optional)")
    p.add_argument("-s", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set mqtt.host=broker.local (repeatable)")  # fmt: skip
    p.add_argument("--model", dest="model_manifest", metavar="MANIFEST", help="same as --set model.manifest=...")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edge-classifier", description="Classify camera frames with an int8 TFLite model and publish over MQTT."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the daemon")
    _config_args(run)
    run.add_argument("--source", help="same as --set source.uri=... (device index, file, URL, glob)")
    run.add_argument("--device-id", help="same as --set device_id=...")
    run.add_argument("--preview", action="store_true",
                     help="serve the live preview page and API on this machine (same as --set http.enabled=true); "
                          "the log names its URL")  # fmt: skip

    classify = sub.add_parser("classify", help="classify image files and print the top-k labels")
    _config_args(classify)
    classify.add_argument("images", nargs="+", type=Path)
    classify.add_argument("--top-k", type=_positive, default=3)
    classify.add_argument("--json", action="store_true", help="one JSON object per image, raw output included")

    check = sub.add_parser("check-config", help="validate a configuration file and load its model")
    check.add_argument("file", type=Path)
    check.add_argument("-s", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    bench = sub.add_parser("bench", help="measure latency, throughput, memory and start-up; JSON on stdout")
    _config_args(bench)
    bench.add_argument("--float-model", type=Path, help="float32 twin .tflite to compare with")
    bench.add_argument("--video", type=Path, help="640x480 video for the end-to-end run (default: the sample video)")
    bench.add_argument("--iterations", type=_positive, default=300, help="bare-inference iterations")
    bench.add_argument(
        "--frames", type=_positive, default=3000, help="frames decoded, and classified end to end (video looped)"
    )
    bench.add_argument(
        "--soak", type=_at_least(1), metavar="SECONDS",
        help="instead of the figures: run the daemon on the looped video for SECONDS and sample RSS, threads, fds "
             "and log lines (your config and --set apply; it publishes to your broker)",
    )  # fmt: skip
    bench.add_argument(
        "--keras-frames", type=_at_least(0), default=100,
        help="frames for the Keras model.predict reference (needs TensorFlow; 0 skips it)",
    )  # fmt: skip
    ha_remove = sub.add_parser("ha-remove", help="remove this device's Home Assistant discovery config from the broker")
    _config_args(ha_remove)
    learning_cli.add_commands(sub, _config_args)  # teach, forget, list-taught
    catalogue_cli.add_commands(sub, _config_args)  # catalogue build|add|remove|list
    return parser


def _load(args: argparse.Namespace) -> Config:
    return _source(args).load()


def _source(args: argparse.Namespace) -> ConfigSource:
    """The config file and --set overrides of this command line (a reload reads them again)."""
    overrides = list(getattr(args, "overrides", []))
    if getattr(args, "model_manifest", None):
        overrides.append(f"model.manifest={args.model_manifest}")
    if getattr(args, "source", None) is not None:
        overrides.append(f"source.uri={args.source}")
    if getattr(args, "preview", False):
        overrides.append("http.enabled=true")
    if getattr(args, "device_id", None):
        overrides.append(f"device_id={args.device_id}")
    path = getattr(args, "config", None) or getattr(args, "file", None)
    return ConfigSource(path, tuple(overrides))


def _run_args(args: argparse.Namespace) -> list[str]:
    """The configuration part of this command line, for an `edge-classifier run` child."""
    run_args = ["-c", str(args.config)] if args.config else []
    for assignment in args.overrides:
        run_args += ["--set", assignment]
    return run_args + (["--model", args.model_manifest] if args.model_manifest else [])


def _setup_logging(level: str, command: str) -> None:
    """Our log's format and level; below debug, what the native libraries print on their own is kept out of it."""
    # Under systemd the journal adds its own timestamps.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    if level == "debug":
        return
    if "OPENCV_LOG_LEVEL" not in os.environ:
        # OpenCV's [ WARN ] lines repeat, in its own words, what the source logs (a camera that cannot be opened).
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if command == "bench":
        # The bench runs the daemon's own loop: its label changes are measured, not reported.
        logging.getLogger("edge_classifier.service").setLevel(logging.WARNING)
        logging.getLogger("edge_classifier.http").setLevel(logging.WARNING)
        logging.getLogger("edge_classifier.homeassistant").setLevel(logging.WARNING)
    # waitress logs every client that leaves a stream at INFO: routine for a preview page, noise in a journal.
    logging.getLogger("waitress").setLevel(logging.WARNING)


def cmd_run(config: Config, source: ConfigSource | None = None) -> int:
    from edge_classifier.service.compose import run_service
    from edge_classifier.service.operator import OperatorRequests

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        logger.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    operator = OperatorRequests()

    def on_status(signum: int, frame: Any) -> None:
        operator.status = True

    def on_hangup(signum: int, frame: Any) -> None:
        operator.reload = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Without handlers both would kill the daemon without a clean stop (only the Last Will says offline).
    signal.signal(signal.SIGUSR1, on_status)
    signal.signal(signal.SIGHUP, on_hangup)
    run_service(config, stop, operator, source)
    return 0


def cmd_classify(config: Config, images: list[Path], top_k: int, as_json: bool) -> int:
    from edge_classifier.learning.daemon import TaughtComponent
    from edge_classifier.model.classifier import read_image_bgr
    from edge_classifier.model.loading import open_classifier
    from edge_classifier.mqtt.client import tls_context

    if config.mqtt.tls:
        tls_context(config.mqtt.ca_file)
    classifier, model = open_classifier(config.model)
    taught = TaughtComponent(state_directory(config))  # the answer `run` would give, taught classes included
    failures = 0
    with classifier:
        taught.refresh(model.sha256, classifier.embedding_spec)
        for path in images:
            try:
                frame = read_image_bgr(path)
            except InputError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failures += 1
                continue
            result = classifier.classify(frame)
            top = taught.top_k(result.top_k(classifier.labels, top_k), result, top_k)
            if as_json:
                print(json.dumps({
                    "image": str(path), "label": top[0][0], "score": round(top[0][1], 4),
                    "top_k": [{"label": n, "score": round(s, 4)} for n, s in top],
                    "raw": np.asarray(result.raw).tolist(), "model": model.as_dict(),
                }))  # fmt: skip
            else:
                print(f"{path}: " + ", ".join(f"{n} {s:.3f}" for n, s in top))
    return 1 if failures else 0


def cmd_check(config: Config, path: Path) -> int:
    from edge_classifier.capture.opening import check_source, missing_camera
    from edge_classifier.model.loading import open_classifier
    from edge_classifier.mqtt.client import tls_context

    check_source(config.source)
    mqtt_password(config.mqtt)
    if config.mqtt.tls:
        tls_context(config.mqtt.ca_file)
    classifier, model = open_classifier(config.model)
    classifier.close()
    no_camera = missing_camera(config.source.uri)
    if no_camera:
        print(f"warning: source.uri: {no_camera}; `run` waits for one to be plugged in", file=sys.stderr)
    print(f"{path}: OK (device {config.device}, model {model.name} {model.version}, source {config.source.uri!r}, "
          f"broker {config.mqtt.host}:{config.mqtt.port})")  # fmt: skip
    return 0


def cmd_ha_remove(config: Config) -> int:
    from edge_classifier.homeassistant.remove import remove_discovery

    removal = remove_discovery(config)
    for line in removal.lines():
        print(line)
    for warning in removal.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    return 1 if removal.refused else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _load(args)
        _setup_logging("debug" if args.verbose else config.log_level, args.command)
        if args.command == "run":
            code = cmd_run(config, _source(args))
        elif args.command == "classify":
            code = cmd_classify(config, args.images, args.top_k, args.json)
        elif args.command == "check-config":
            code = cmd_check(config, args.file)
        elif args.command == "ha-remove":
            code = cmd_ha_remove(config)
        elif args.command in learning_cli.COMMANDS:
            code = learning_cli.run_command(args, config)
        elif args.command == catalogue_cli.COMMAND:
            code = catalogue_cli.run_command(args, config)
        else:
            from edge_classifier.bench.run import run_bench

            if args.soak:
                from edge_classifier.bench.run import default_video
                from edge_classifier.bench.soak import soak

                report = soak(_run_args(args), args.video or default_video(), args.soak)
            else:
                report = run_bench(
                    config, args.float_model, args.video, args.iterations, args.frames, args.keras_frames
                )
            print(json.dumps(report, indent=2))
            code = 0
    except EdgeClassifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    logging.shutdown()
    if any(t.name.startswith("capture-") and t.is_alive() for t in threading.enumerate()):
        # A reader still blocked inside OpenCV would abort the interpreter at exit; leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
