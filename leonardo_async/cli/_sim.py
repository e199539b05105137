"""``leonardo-async sim``: run the local simulator of Leonardo's API until Ctrl-C."""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import cattrs

from ._common import EXIT_BAD_INPUT, EXIT_OK, INTERRUPTED, Commands, report
from ._fields import readable_errors

if TYPE_CHECKING:  # the simulator is imported by the commands that start one, when run
    from ..simulator import SimulatorConfig

__all__ = ["config_from_args", "register"]

_DESCRIPTION = """\
Run a local stand-in for Leonardo's image-to-video API, its upload storage and its CDN,
on loopback, until Ctrl-C. Point any client at it with the two variables it prints:

    export LEONARDO_BASE_URL=http://127.0.0.1:PORT/api/rest/v1
    export LEONARDO_API_KEY=sim-test-key-0000

Every knob of SimulatorConfig can be set with --config (JSON, or @file.json); the flags
below override it. Example: --config '{"faults": {"server_error_rate": 0.1}}'"""


def register(commands: Commands) -> None:
    """Add the ``sim`` subcommand."""
    parser = commands.add(
        "sim", run, help="run the local API simulator until Ctrl-C", description=_DESCRIPTION
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: any free one)")
    parser.add_argument(
        "--storage-port", type=int, default=0, help="upload/CDN port (default: any free one)"
    )
    parser.add_argument(
        "--job-seconds",
        type=float,
        metavar="S",
        help="every job takes S seconds (default: lognormal around 2 s)",
    )
    parser.add_argument(
        "--failure-rate",
        type=float,
        metavar="R",
        help="probability that a job ends FAILED (0 to 1)",
    )
    parser.add_argument(
        "--rps",
        type=float,
        metavar="N",
        help="requests per second allowed per key (default: no limit)",
    )
    parser.add_argument(
        "--max-running",
        type=int,
        metavar="N",
        help="generations a key may have running (default: 10); more queue behind them",
    )
    parser.add_argument(
        "--queue-depth",
        type=int,
        metavar="N",
        help="generations a key may have queued behind busy slots (default: 20 per slot)",
    )
    parser.add_argument(
        "--refuse-at-concurrency",
        action="store_true",
        default=None,
        help="refuse a submit with 429 while every slot is busy, with no queue",
    )
    parser.add_argument(
        "--slots", type=int, metavar="N", help="apiConcurrencySlots reported by /me (default: 10)"
    )
    parser.add_argument("--seed", type=int, metavar="N", help="seed of all random draws")
    parser.add_argument("--api-key", metavar="KEY", help="the key to accept")
    parser.add_argument(
        "--realistic",
        action="store_true",
        help="Leonardo's documented limits and Veo timings (jobs ~75 s)",
    )
    parser.add_argument(
        "--config",
        metavar="JSON|@FILE",
        help="SimulatorConfig knobs as JSON, or @path to a JSON file",
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Build the simulator's config: base, then ``--config``, then the flags.

    :raises ValueError: naming the bad knob or the unreadable ``--config``
    """
    from ..simulator import SimulatorConfig, config_from_mapping

    for flag, port in (("--port", args.port), ("--storage-port", args.storage_port)):
        # Checked here: the socket layer's OverflowError would escape as a traceback.
        if not 0 <= port <= _MAX_PORT:
            raise ValueError(f"{flag} must be 0-{_MAX_PORT}, not {port}")
    changes: dict[str, Any] = {}
    if args.config:
        text = args.config
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"--config: cannot read {text[1:]}: {exc.strerror}") from None
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config: not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError("--config: expected a JSON object of knobs")
        changes.update(loaded)
    flags = {knob: getattr(args, dest) for knob, (dest, _) in _FLAGS.items()}
    changes.update({name: value for name, value in flags.items() if value is not None})
    if args.job_seconds is not None:
        changes["durations"] = {"kind": "fixed", "median": args.job_seconds, "spread": 0.0}
    base = SimulatorConfig.realistic() if args.realistic else SimulatorConfig()
    try:
        return config_from_mapping(changes, base=base)
    except ValueError as exc:
        # The knobs' validators name knob and value; cattrs' own text adds "@ $" paths.
        cause = exc.__cause__
        message = (
            readable_errors(cause) if isinstance(cause, cattrs.BaseValidationError) else str(exc)
        )
        given = [flag for knob, (dest, flag) in _FLAGS.items()
                 if getattr(args, dest) is not None and knob in message]  # fmt: skip
        if args.job_seconds is not None and "durations" in message:
            given.append("--job-seconds")
        raise ValueError(f"{'/'.join(given)}: {message}" if given else message) from None


#: The highest TCP port number.
_MAX_PORT: Final = 65535

#: The flags that set a knob: knob -> (argparse dest, flag), to name the flag in errors.
_FLAGS: Final = {
    "host": ("host", "--host"),
    "api_port": ("port", "--port"),
    "storage_port": ("storage_port", "--storage-port"),
    "failure_rate": ("failure_rate", "--failure-rate"),
    "requests_per_second": ("rps", "--rps"),
    "max_running": ("max_running", "--max-running"),
    "queue_depth": ("queue_depth", "--queue-depth"),
    "refuse_at_concurrency": ("refuse_at_concurrency", "--refuse-at-concurrency"),
    "concurrency_slots": ("slots", "--slots"),
    "seed": ("seed", "--seed"),
    "api_key": ("api_key", "--api-key"),
}


def run(args: argparse.Namespace) -> int:
    """Run ``sim`` until interrupted."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        report(str(exc))
        return EXIT_BAD_INPUT
    try:
        anyio.run(functools.partial(_serve, config))
    except INTERRUPTED:
        print("simulator stopped", file=sys.stderr)
    except OSError as exc:
        report(f"cannot listen on {config.host}: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    return EXIT_OK


#: Jobs shorter than this (median seconds) finish before the client's first look (20 s).
SHORT_JOBS: Final = 20.0
_POLL_HINT: Final = (
    "\nIts jobs take seconds, not minutes: poll sooner than the defaults, e.g.\n"
    "  leonardo-async generate ... --poll-initial 1 --poll-max 2"
)


async def _serve(config: SimulatorConfig) -> None:
    """Start the simulator, say where it is, and run until cancelled."""
    from ..simulator import Simulator

    async with Simulator(config) as sim:
        print(
            f"Leonardo simulator running (Ctrl-C to stop)\n"
            f"  API:     {sim.base_url}\n"
            f"  storage: {sim.storage_url}\n"
            f"  admin:   {sim.admin_url} (routes: stats, config, reset, generations)\n"
            f"  API key: {sim.api_key}\n"
            f"Point a client at it:\n"
            f"export LEONARDO_BASE_URL={shlex.quote(sim.base_url)}\n"
            f"export LEONARDO_API_KEY={shlex.quote(sim.api_key)}"
            + (_POLL_HINT if config.durations.median < SHORT_JOBS else ""),
            flush=True,
        )
        await anyio.sleep_forever()
