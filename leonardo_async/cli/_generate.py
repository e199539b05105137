"""``leonardo-async generate``: one image-to-video generation, from frames to an MP4 on disk.

:func:`execute` is the whole path (validate, upload, submit, wait with a progress line,
download atomically, report) and is shared with ``demo``, which only points it at an
in-process simulator.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any, Final, TextIO

import anyio
import attrs

from .._client import LeonardoClient
from .._errors import (
    GenerationFailedError,
    LeonardoError,
    ValidationError,
    WaitTimeoutError,
)
from .._schedule import PollSchedule
from .._uploads import is_local_image, read_image
from ..models import (
    FrameRef,
    Generation,
    GenerationJob,
    ImageToVideoRequest,
    Model,
    Orientation,
    Resolution,
)
from ._common import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    FLAGS,
    Commands,
    report,
    report_invalid,
)
from ._findings import apply_findings
from ._progress import Progress
from ._remote import (
    NO_KEY,
    add_poll_options,
    check_out,
    cost_text,
    print_json,
    schedule_from_args,
    view_of,
    wait_command,
    wait_with_progress,
)

__all__ = ["GenerateJob", "check", "execute", "register"]

#: Seconds ``generate`` waits for the video before giving up (the job keeps running).
DEFAULT_TIMEOUT: Final = 900.0

_DESCRIPTION = """\
Turn a start frame (and optionally an end frame) into a video with Veo 3.1.

The API key is read from LEONARDO_API_KEY and the API root from LEONARDO_BASE_URL
(default: Leonardo's). Frames are local PNG/JPEG/WebP files (uploaded first) or the ids of
images Leonardo already has. Everything is checked before anything is sent.

If --timeout passes or Ctrl-C stops the wait, the job keeps running (it is paid for):
the message names the 'leonardo-async wait ID --out FILE' that picks it up. Running
generate again would submit, and pay for, a second job.

exit codes: 0 done, 1 the generation failed, 2 bad input (nothing was submitted),
3 API or network error, 130 interrupted"""


@attrs.frozen
class GenerateJob:
    """What to generate and where to put it: the options of ``generate``.

    :param prompt: the text prompt
    :param image: the start frame: a local file or an image id
    :param out: where to write the MP4
    :param end_image: the optional end frame: a local file or an image id
    :param model: ``VEO3_1`` or ``VEO3_1FAST``
    :param resolution: ``RESOLUTION_720`` or ``RESOLUTION_1080``; from the size if unset
    :param orientation: ``landscape`` or ``portrait``
    :param width: output width in pixels (with ``height``)
    :param height: output height in pixels
    :param duration: 4, 6 or 8 seconds
    :param seed: a fixed seed
    :param timeout: seconds to wait for the video; ``None`` waits for ever
    """

    prompt: str
    image: str
    out: Path
    end_image: str | None = None
    model: str = Model.VEO3_1.value
    resolution: str | None = None
    orientation: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    seed: int | None = None
    timeout: float | None = DEFAULT_TIMEOUT

    def options(self) -> dict[str, Any]:
        """The request's fields besides its frames, as keyword arguments."""
        return {
            "prompt": self.prompt,
            "model": self.model,
            "resolution": self.resolution,
            "duration": self.duration,
            "orientation": self.orientation,
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
        }


def register(commands: Commands) -> None:
    """Add the ``generate`` subcommand."""
    parser = commands.add(
        "generate",
        run,
        help="turn a start frame into a video (Veo 3.1)",
        description=_DESCRIPTION,
    )
    parser.add_argument(
        "--image",
        required=True,
        metavar="START",
        help="start frame: a PNG/JPEG/WebP file, or an image id",
    )
    parser.add_argument(
        "--end-image", metavar="END", help="end frame: a PNG/JPEG/WebP file, or an image id"
    )
    parser.add_argument("--prompt", required=True, metavar="TEXT", help="what happens in the video")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FILE.mp4",
        help="where to write the video (written whole or not at all)",
    )
    parser.add_argument(
        "--model",
        default=Model.VEO3_1.value,
        help=f"one of {', '.join(m.value for m in Model)} (default: %(default)s)",
    )
    parser.add_argument(
        "--resolution",
        metavar="RESOLUTION",
        help=" or ".join(r.value for r in Resolution)
        + " (default: from --width/--height, else RESOLUTION_720)",
    )
    parser.add_argument(
        "--orientation",
        metavar="ORIENTATION",
        help=" or ".join(o.value for o in Orientation) + " (default: landscape)",
    )
    parser.add_argument("--width", type=int, metavar="W", help="output width in pixels")
    parser.add_argument("--height", type=int, metavar="H", help="output height in pixels")
    parser.add_argument("--duration", type=int, metavar="SECONDS", help="4, 6 or 8 (default: 8)")
    parser.add_argument("--seed", type=int, metavar="N", help="fixed seed, for reproducibility")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="seconds to wait for the video (default: %(default)g)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (id, status, cost, video) on stdout instead of text",
    )
    add_poll_options(parser)


def job_from_args(args: argparse.Namespace) -> GenerateJob:
    """Build the job from parsed options."""
    return GenerateJob(
        prompt=args.prompt,
        image=args.image,
        out=args.out,
        end_image=args.end_image,
        model=args.model,
        resolution=args.resolution,
        orientation=args.orientation,
        width=args.width,
        height=args.height,
        duration=args.duration,
        seed=args.seed,
        timeout=args.timeout,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``generate`` with the key and base URL from the environment."""
    api_key = os.environ.get("LEONARDO_API_KEY", "")
    if not api_key.strip():
        report(NO_KEY)
        return EXIT_BAD_INPUT
    if args.timeout is not None and not args.timeout > 0:
        report(f"--timeout: must be a positive number of seconds, got {args.timeout:g}")
        return EXIT_BAD_INPUT
    try:
        schedule = schedule_from_args(args)
    except ValidationError as exc:
        return report_invalid(exc)
    return anyio.run(
        functools.partial(
            execute,
            job_from_args(args),
            api_key=api_key,
            base_url=os.environ.get("LEONARDO_BASE_URL") or None,
            schedule=schedule,
            as_json=args.json,
        )
    )


async def execute(
    job: GenerateJob,
    *,
    api_key: str,
    base_url: str | None,
    schedule: PollSchedule | None = None,
    as_json: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    label: str = "generate",
) -> int:
    """Generate one video and report it; returns the exit code.

    Prints the video's path, the generation id and its cost on ``stdout`` (or, with
    ``as_json``, one JSON object whatever the outcome, once a job was submitted); progress
    and errors go to ``stderr``. Bad input is reported before any request is made. A job
    left running (timeout, Ctrl-C) is reported with the ``wait`` command that picks it up.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        check(job)
        client = LeonardoClient(api_key, base_url=base_url, poll_schedule=schedule)
    except ValidationError as exc:
        return report_invalid(exc, stream=err)
    submitted: list[GenerationJob] = []
    seen: list[Generation] = []
    outcome: Path | LeonardoError | OSError
    with Progress(err, label=label) as progress:
        async with client:
            try:
                outcome = await _generate(client, job, progress, submitted, seen)
            except (LeonardoError, OSError) as exc:
                outcome = exc
            except BaseException:  # Ctrl-C arrives here as a cancellation
                if submitted:
                    generation_id = submitted[0].id
                    progress.message(
                        f"generation {generation_id} was submitted and keeps running on "
                        f"the server; to wait for it and download it, run:\n"
                        f"  {wait_command(generation_id, job.out)}"
                    )
                    if as_json:
                        print_json(_view(job, submitted, seen, error="interrupted"), out)
                raise
    if isinstance(outcome, Path):
        if as_json:
            print_json(_view(job, submitted, seen, video=outcome), out)
        else:
            print(f"video: {outcome}", file=out)
            print(f"generation: {submitted[0].id}", file=out)
            print(f"cost: {cost_text(submitted[0])}", file=out)
        out.flush()
        return EXIT_OK
    code, message, follow_up = _failure(outcome, job, submitted)
    report(message, stream=err)
    if follow_up:
        print(follow_up, file=err)
    if as_json and submitted:
        print_json(_view(job, submitted, seen, error=message, resume=code == EXIT_API_ERROR), out)
    return code


def _view(
    job: GenerateJob,
    submitted: list[GenerationJob],
    seen: list[Generation],
    *,
    video: Path | None = None,
    error: str | None = None,
    resume: bool = True,
) -> object:
    """The ``--json`` object of the submitted job."""
    generation = seen[-1] if seen else None
    finished = generation is not None and generation.is_finished
    return view_of(
        submitted[0].id,
        generation,
        job=submitted[0],
        video=video,
        next=wait_command(submitted[0].id, job.out) if resume and not finished else None,
        error=error,
    )


def check(job: GenerateJob) -> None:
    """Check everything that can be checked locally: the Veo rules, the frames, ``out``.

    The client checks the same before it sends anything; checking first here keeps bad
    input from ever starting the progress line.

    :raises ValidationError: naming the field at fault
    """
    ImageToVideoRequest(
        image=FrameRef("start-frame"),
        end_image=None if job.end_image is None else FrameRef("end-frame"),
        **job.options(),
    )
    for name, source in (("image", job.image), ("end_image", job.end_image)):
        if source is not None and is_local_image(source):
            read_image(source, name=name)
    check_out(job.out)


async def _generate(
    client: LeonardoClient,
    job: GenerateJob,
    progress: Progress,
    submitted: list[GenerationJob],
    seen: list[Generation],
) -> Path:
    """Submit, wait and download; the submitted job and the finished generation are
    appended to ``submitted`` and ``seen``."""
    await apply_findings(client)
    progress.update(status="submitting")
    generation_job = await client.image_to_video(
        image=job.image, end_image=job.end_image, **job.options()
    )
    submitted.append(generation_job)
    progress.message(f"submitted generation {generation_job.id} ({cost_text(generation_job)})")
    tracked = client.track(generation_job.id, deadline=job.timeout)
    try:
        generation = await wait_with_progress(tracked, progress)
    finally:
        if tracked.generation is not None:
            seen.append(tracked.generation)
    seen.append(generation)
    progress.update(status="downloading")
    path = await client.download(generation, job.out)
    progress.update(status="done")
    return path


def _failure(
    exc: LeonardoError | OSError, job: GenerateJob, submitted: list[GenerationJob]
) -> tuple[int, str, str | None]:
    """The exit code, the error line, and what to run next, for an error after submitting."""
    if isinstance(exc, ValidationError):
        flag = FLAGS.get(exc.field, exc.field)
        return EXIT_BAD_INPUT, f"{flag}: {exc}", None
    if isinstance(exc, GenerationFailedError):
        return EXIT_FAILED, f"{exc} (Leonardo reports no reason)", None
    if isinstance(exc, WaitTimeoutError):
        return (
            EXIT_API_ERROR,
            f"{exc}; it keeps running on the server (and is paid for)",
            f"to wait for it and download it, run:\n  {wait_command(exc.generation_id, job.out)}",
        )
    follow_up = None
    if submitted:  # the job exists: whatever broke after the submit, it can be picked up
        follow_up = (
            f"generation {submitted[0].id} was submitted; to wait for it and download "
            f"it, run:\n  {wait_command(submitted[0].id, job.out)}"
        )
    if isinstance(exc, OSError):
        return EXIT_API_ERROR, f"cannot write the video: {exc}", follow_up
    return EXIT_API_ERROR, str(exc), follow_up
