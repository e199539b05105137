"""``leonardo-async demo``: the whole ``generate`` path against an in-process simulator.

No API key, no network, no credits: a :class:`~leonardo_async.simulator.Simulator` starts
on loopback with short jobs, and :func:`._generate.execute` (exactly what ``generate``
runs) turns the example start frame into an MP4 through it.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from .._files import frame_misfit, image_file_size
from .._schedule import PollSchedule
from ..models import VideoSpec
from ._common import EXIT_BAD_INPUT, EXIT_OK, Commands, report
from ._fields import JobSpec
from ._frames import START, frame_png
from ._generate import GenerateJob, execute

if TYPE_CHECKING:  # imported when the demo runs, not by every command
    from ..simulator import JobDurations, SimulatorConfig

__all__ = ["example_frame", "register"]

DEFAULT_PROMPT: Final = (
    "The sun sinks slowly into a calm violet sea; gentle waves, warm light, slow cinematic push-in"
)
FRAME_NAME: Final = "start-frame.png"
#: A schedule scaled to the demo's short jobs (the default is sized for real Veo jobs).
DEMO_SCHEDULE: Final = PollSchedule(initial=0.5, max_interval=0.5)

_DESCRIPTION = """\
Show the client end to end without an API key or network: start the local simulator,
upload the example start frame, submit, wait with progress, and download the MP4 to
DIR/demo.mp4. With PyAV installed (leonardo-async[video]) the simulator draws that MP4 from
the start frame (it fades to black); without, it is the simulator's test-pattern clip."""


def register(commands: Commands) -> None:
    """Add the ``demo`` subcommand."""
    parser = commands.add(
        "demo",
        run,
        help="generate a video against the built-in simulator (no key needed)",
        description=_DESCRIPTION,
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("leonardo-demo"),
        metavar="DIR",
        help="directory to write demo.mp4 into (default: %(default)s)",
    )
    parser.add_argument(
        "--prompt", default=DEFAULT_PROMPT, metavar="TEXT", help="the prompt to send"
    )
    parser.add_argument(
        "--image", type=Path, metavar="PATH", help="start frame (default: examples/start-frame.png)"
    )
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=2.0,
        metavar="S",
        help="how long the simulated job runs (default: %(default)g)",
    )


def example_frame(directory: Path) -> Path:
    """The example start frame: ``examples/start-frame.png`` from the checkout if it is
    there, else the same picture drawn into ``directory``."""
    checkout = Path(__file__).resolve().parents[2] / "examples" / FRAME_NAME
    for candidate in (Path("examples") / FRAME_NAME, checkout):
        if candidate.is_file():
            return candidate
    drawn = directory / FRAME_NAME
    directory.mkdir(parents=True, exist_ok=True)
    drawn.write_bytes(frame_png(START))
    return drawn


def run(args: argparse.Namespace) -> int:
    """Run ``demo``."""
    if not args.job_seconds >= 0:
        report(f"--job-seconds: must be zero or more, got {args.job_seconds:g}")
        return EXIT_BAD_INPUT
    if args.out.exists() and not args.out.is_dir():
        report(f"--out: {args.out} exists and is not a directory")
        return EXIT_BAD_INPUT
    try:
        args.out.mkdir(parents=True, exist_ok=True)  # the demo's own folder, made for it
    except OSError as exc:
        report(f"--out: {args.out} cannot be made ({exc.strerror or exc})")
        return EXIT_BAD_INPUT
    image = args.image if args.image is not None else example_frame(args.out)
    orientation = fitting_orientation(image)
    job = GenerateJob(
        JobSpec(prompt=args.prompt, image=str(image), orientation=orientation),
        out=args.out / "demo.mp4",
    )
    from ..simulator import JobDurations

    config, shows = _video_config(JobDurations.fixed(args.job_seconds), image)
    code = anyio.run(functools.partial(_demo, job, config))
    if code == EXIT_OK:
        option = "" if orientation is None else f" --orientation {orientation}"
        print(
            f"\nDemo done: {job.out} was made by the local simulator; it shows {shows}.\n"
            "With a real key, the same thing is:\n"
            f"  export LEONARDO_API_KEY=...\n"
            f"  leonardo-async generate --image {image}{option} --prompt '...' --out video.mp4"
        )
    return code


def fitting_orientation(image: Path) -> str | None:
    """The orientation that crops ``image`` least, when it is not the default one
    (``portrait`` for a portrait frame); ``None`` for the default, or a file that is not
    an image (``generate``'s own check then says what is wrong with it)."""
    misfit = frame_misfit(image_file_size(image), VideoSpec(prompt="demo"), str(image))
    return None if misfit is None else misfit.fits.value


def _video_config(durations: JobDurations, image: Path) -> tuple[SimulatorConfig, str]:
    """The simulator config, and what its video will show (PyAV decides which)."""
    from ..simulator import SimulatorConfig

    try:
        config = SimulatorConfig(durations=durations, video="frames")
    except ValueError:  # no PyAV: the bundled clip
        return (
            SimulatorConfig(durations=durations),
            "the simulator's 4 s test pattern (install leonardo-async[video] to see "
            "a video drawn from your frame)",
        )
    return config, f"{image} fading to black (a stand-in for the motion a real job makes)"


async def _demo(job: GenerateJob, config: SimulatorConfig) -> int:
    from ..simulator import Simulator

    async with Simulator(config) as sim:
        print(
            f"Local simulator at {sim.base_url} (no API key, no network, no credits)",
            file=sys.stderr,
            flush=True,
        )
        return await execute(
            job, api_key=sim.api_key, base_url=sim.base_url, schedule=DEMO_SCHEDULE, label="demo"
        )
