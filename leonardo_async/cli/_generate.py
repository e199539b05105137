"""``leonardo-async generate``: one image-to-video generation, from frames to an MP4 on disk.

:func:`execute` is the whole path (validate, upload, submit, wait with a progress line,
download atomically, report) and is shared with ``demo``, which only points it at an
in-process simulator.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import os
import re
import sys
import typing
import warnings
from pathlib import Path
from typing import Final, TextIO

import anyio
import attrs

from .._client import LeonardoClient
from .._errors import (
    FrameCropWarning,
    GenerationFailedError,
    LeonardoError,
    ValidationError,
    WaitTimeoutError,
)
from .._files import (
    IMAGE_SUFFIXES,
    FrameMisfit,
    ImageData,
    frame_misfit,
    is_local_image,
    read_image,
)
from .._schedule import PollSchedule
from ..models import Generation, GenerationJob
from ._common import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    Commands,
    add_redis_option,
    invalid_text,
    report,
    report_invalid,
    report_warning,
)
from ._fields import JobSpec
from ._findings import apply_findings
from ._preview import dry_run
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

--dry-run checks everything and prints the request a run would send (the key redacted)
and its estimated cost, sending nothing.

exit codes: 0 done, 1 the generation failed, 2 bad input (nothing was submitted),
3 API or network error, 130 interrupted"""


@attrs.frozen
class GenerateJob:
    """What to generate and where to put it: the options of ``generate``.

    :param spec: the request, in the fields :class:`JobSpec` lists (a batch line's too)
    :param out: where to write the MP4
    :param timeout: seconds to wait for the video; ``None`` waits for ever
    """

    spec: JobSpec
    out: Path
    timeout: float | None = DEFAULT_TIMEOUT


#: The request fields ``generate`` offers as options, from the one table of fields.
OPTIONS: Final = tuple(
    (field.name, field.metadata["option"])
    for field in attrs.fields(attrs.resolve_types(JobSpec))
    if "option" in field.metadata
)


def flag(name: str) -> str:
    """The command-line option of a request field: ``negative_prompt`` -> ``--negative-prompt``."""
    return "--" + name.replace("_", "-")


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
        help="start frame: a PNG/JPEG/WebP file (a value with a / or an image extension is "
        "always a file), or an image id",
    )
    parser.add_argument(
        "--end-image", metavar="END", help="end frame: a PNG/JPEG/WebP file, or an image id"
    )
    add_redis_option(parser)
    parser.add_argument("--prompt", required=True, metavar="TEXT", help="what happens in the video")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FILE.mp4",
        help="where to write the video (written whole or not at all)",
    )
    types = {field.name: field.type for field in attrs.fields(attrs.resolve_types(JobSpec))}
    for name, option in OPTIONS:
        parser.add_argument(
            flag(name),
            dest=name,
            type=whole if int in typing.get_args(types[name]) else str,
            metavar=option.metavar,
            help=option.help,
        )
    parser.add_argument(
        "--public",
        dest="is_public",
        action="store_true",
        default=None,
        help="show the video in Leonardo's community feed (default: private)",
    )
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
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything and print the request that would be sent (the key "
        "redacted) and its estimated cost; send nothing",
    )
    add_poll_options(parser)


def whole(value: str) -> int | str:
    """A whole-number option: the number, or the text as given, which the request's own
    check then reports, naming what it takes (``--duration: invalid value '4s': one of 4,
    6, 8 seconds``, where argparse would say only "invalid int value")."""
    try:
        return int(value)
    except ValueError:
        return value


def job_from_args(args: argparse.Namespace) -> GenerateJob:
    """Build the job from parsed options."""
    given = {name: getattr(args, name) for name, _ in OPTIONS}
    spec = JobSpec(
        prompt=args.prompt,
        image=args.image,
        end_image=args.end_image,
        is_public=args.is_public,
        **{name: value for name, value in given.items() if value is not None},
    )
    return GenerateJob(spec, args.out, args.timeout)


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
    if args.dry_run:
        return _dry_run(job_from_args(args), api_key, as_json=args.json)
    return anyio.run(
        functools.partial(
            execute,
            job_from_args(args),
            api_key=api_key,
            base_url=os.environ.get("LEONARDO_BASE_URL") or None,
            schedule=schedule,
            as_json=args.json,
            redis=args.redis,
        )
    )


async def execute(
    job: GenerateJob,
    *,
    api_key: str,
    base_url: str | None,
    schedule: PollSchedule | None = None,
    as_json: bool = False,
    redis: str | None = None,
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
        notes = check(job)
        client = LeonardoClient(api_key, base_url=base_url, poll_schedule=schedule, redis=redis)
    except ValidationError as exc:
        return report_invalid(exc, stream=err)
    for note in notes:
        report_warning(note, stream=err)
    submitted: list[GenerationJob] = []
    seen: list[Generation] = []
    outcome: Path | LeonardoError | OSError
    with Progress(err, label=label) as progress, warnings.catch_warnings():
        warnings.simplefilter("ignore", FrameCropWarning)  # said above, in the options' words
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


def _dry_run(job: GenerateJob, api_key: str, *, as_json: bool) -> int:
    """``--dry-run``: the checks of a run, then the request it would send."""
    try:
        for note in check(job):
            report_warning(note)
        client = LeonardoClient(api_key, base_url=os.environ.get("LEONARDO_BASE_URL") or None)
        end = None if job.spec.end_image is None else _source(job.spec.end_image)
        return dry_run(
            client,
            job.spec.video_spec(),
            _source(job.spec.image),
            end,
            as_json=as_json,
            stdout=sys.stdout,
        )
    except ValidationError as exc:
        return report_invalid(exc)


def check(job: GenerateJob) -> list[str]:
    """Check everything that can be checked locally: the Veo rules, the frames, ``out``;
    returns the warnings to show before anything is sent (a frame Leonardo would crop).

    The client checks the same before it sends anything; checking first here keeps bad
    input from ever starting the progress line.

    :raises ValidationError: naming the field at fault
    """
    spec = job.spec.video_spec()
    notes = []
    for name, source in (("image", job.spec.image), ("end_image", job.spec.end_image)):
        if source is None:
            continue
        if not is_path(source):
            note = id_note(source, flag(name), Path.cwd())
            notes.extend([note] if note is not None else [])
            continue
        misfit = frame_misfit(check_file(source, name).size, spec, f"{flag(name)} {source}")
        if misfit is not None:
            notes.append(misfit.text(crop_fix(misfit, sized=job.spec.width is not None)))
    check_out(job.out)
    return notes


#: The shape of every image id Leonardo has been seen to give (ids are opaque, so this
#: only decides whether a value taken for an id is worth a word, never whether it is sent).
_UUID: Final = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)


def id_note(value: str, label: str, folder: Path) -> str | None:
    """A warning for a frame value taken as an image id that is not shaped like one (a
    file name without its dot, say), naming the nearest image file in ``folder``."""
    if _UUID.fullmatch(value):
        return None
    try:
        names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES)]
    except OSError:
        names = []
    near = difflib.get_close_matches(value, names, n=1, cutoff=0.75)
    return (
        f"{label} {value} is no file here, so it is sent as an image id, which it does not "
        "look like (Leonardo's are UUIDs; a file needs an image extension or a /)"
        + (f": did you mean {near[0]}?" if near else "")
    )


def crop_fix(misfit: FrameMisfit, *, sized: bool) -> str:
    """The options that make a video of ``misfit``'s frame's shape: ``--orientation
    portrait``, or the size swapped when the size was given (``--width``, ``--height``)."""
    if sized:
        return f"--width {misfit.video[1]} --height {misfit.video[0]}"
    return f"--orientation {misfit.fits.value}"


def is_path(value: str) -> bool:
    """Whether a frame option names a file rather than an image id.

    One rule, so that a mistyped path is never sent as an id (and answered by a 400):
    a value with a path separator or an image extension, or one that exists on disk.
    """
    return is_local_image(value) or "/" in value or os.path.exists(value)


def _source(value: str) -> str | Path:
    """A frame option as the library takes it: a ``Path`` to upload, or an id."""
    return Path(value) if is_path(value) else value


def check_file(value: str, name: str) -> ImageData:
    """The image a frame path names, read and checked.

    :raises ValidationError: no such file, a directory, or not PNG/JPEG/WebP
    """
    path = Path(value)
    if path.is_dir():
        raise ValidationError(name, value, "not a file but a directory: give an image file")
    if not path.exists():
        raise ValidationError(
            name,
            value,
            "not a file: nothing is there (a value with a / or an image extension is a "
            "path; an image id has neither)",
        )
    return read_image(path, name=name)


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
        image=_source(job.spec.image),
        end_image=None if job.spec.end_image is None else _source(job.spec.end_image),
        **job.spec.request_options(),
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
        return EXIT_BAD_INPUT, invalid_text(exc), None
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
