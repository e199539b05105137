"""Batch files: one JSON request per line in, one JSON result per line out.

Every input line gets exactly one output line, so a results file can be joined back to
its input by ``line``. A line that cannot become a valid request is reported with its
line number and becomes an ``ERROR`` result; the other lines are not held up by it.
That includes a frame file that is missing or not an image, a ``key`` another line
already has, and a field name that is not in :class:`._fields.JobSpec` (a typo that would
otherwise change what is bought): all are found while reading, before anything is sent.
Relative frame paths are read relative to the batch file, not the working directory.

Hostile lines are line errors too, never a crash of the whole file: text that is not
text (a lone surrogate such as ``"\\ud800"`` would be paid for, then break every write of
the results and the journal), nesting deeper than any request needs, a frame that is a
FIFO or a device. Lines are counted as editors count them (a UTF-8 byte order mark is
skipped, and only ``\n`` ends a line, so a stray ``\r`` shifts no line number).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final, Literal

import attrs
import cattrs

from .._errors import LeonardoError, ValidationError
from .._files import is_local_image, read_image
from .._validate import is_text
from .._wire import STRICT_HOOKS
from ._fields import JobSpec, check_names, readable_errors
from ._items import BatchItem, BatchResult

__all__ = [
    "CATEGORIES",
    "JobLine",
    "KeyScheme",
    "ResultLine",
    "input_digest",
    "read_jobs",
    "result_line",
    "unfinished_line",
    "write_results",
]

#: Longer prompts are refused locally: no video prompt needs them, and it is usually a
#: file read into the wrong field.
MAX_PROMPT_CHARS: Final = 10_000
#: Deepest nesting of objects and lists a line may hold (requests need two or three).
MAX_DEPTH: Final = 32
_BOM: Final = b"\xef\xbb\xbf"


_specs = cattrs.Converter(forbid_extra_keys=False)
for _kind, _hook in STRICT_HOOKS.items():
    _specs.register_structure_hook(_kind, _hook)


#: What names a line without a ``key`` in the journal (see :func:`read_jobs`).
KeyScheme = Literal["content", "line"]


@attrs.frozen
class JobLine:
    """One input line: its item, or why it could not become one.

    :param content: a hash of the line as written (its fields but ``key``, in any order
        and spacing): what names it in the journal when it has no ``key``. Frame paths
        count as written, so a folder moved with its frames keeps its names.
    """

    line: int
    item: BatchItem | None
    error: str | None = None
    content: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class ResultLine:
    """One line of ``results.jsonl``.

    :param status: ``COMPLETE``, ``FAILED``, ``ERROR``, or, for a line a stopped run left
        unfinished, ``RUNNING`` (submitted and paid; ``--resume`` waits for it) or
        ``PENDING`` (never submitted)
    :param category: what became of the line, one of :data:`CATEGORIES`
    :param video: the downloaded file; ``video_url`` is the CDN's URL, when known
    :param cost: what the submit said the job costs, as the server stated it (``FAILED``
        jobs included: whether Leonardo charges them is not documented)
    :param cost_estimated: the answer named no cost (lost, a 504, a null ``cost``): ``cost``
        is the estimate for the same kind of job, counted in the totals all the same
    """

    line: int
    status: str
    generation_id: str | None
    video: str | None
    error: str | None
    cost: str | None = None
    cost_unit: str | None = None
    prompt: str | None = None
    category: str = "bad_line"
    video_url: str | None = None
    cost_estimated: bool = False


#: What became of an input line, in the order summaries list them.
CATEGORIES: Final = (
    "complete",  # the video was made (and downloaded, unless --no-download)
    "failed",  # the server's job ended FAILED
    "error_before_submit",  # nothing was submitted (an upload or a refused submit)
    "maybe_submitted",  # the submit's answer was lost and the listing has not shown its
    # job yet: perhaps made and paid; --resume looks for it before sending again
    "error_after_submit",  # the job exists (and is paid for); waiting or downloading failed
    "skipped_budget",  # not submitted: it would have passed --max-credits/--max-cost
    "bad_line",  # the line itself is wrong; nothing was sent for it
    "running",  # a stopped run left it running on the server; --resume picks it up
    "not_started",  # a stopped run never got to it
)
_BUDGET_SKIP: Final = "not submitted: the budget"


def input_digest(path: Path) -> str:
    """A hash of the batch file's bytes, to tell a journal which input it belongs to."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_jobs(path: Path, *, keys: KeyScheme = "content") -> list[JobLine]:
    """Read a JSONL batch file; blank lines and ``#`` comments are skipped.

    :param keys: what names a line without a ``key`` of its own in the journal: its
        ``"content"`` (a hash of what it asks for, and which of the lines asking for the
        same it is: ``<hash>#2``), so that inserting, removing, reordering or editing lines
        never gives one line's journal row to another; or its ``"line"`` number, as the
        journals of earlier releases have them
    :raises ValidationError: the file itself cannot be read
    """
    try:
        raw_lines = path.read_bytes().removeprefix(_BOM).split(b"\n")
    except OSError as exc:
        raise ValidationError("jobs file", str(path), f"a readable file ({exc.strerror})") from None
    base = path.resolve().parent
    frames: dict[str, str | None] = {}
    taken: dict[str, int] = {}
    copies: Counter[str] = Counter()
    jobs = []
    for number, raw in enumerate(raw_lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        job = _parse_line(number, stripped, base)
        if job.item is not None and job.item.key is None:
            key = str(number)
            if keys == "content" and job.content is not None:
                copies[job.content] += 1
                key = f"{job.content}#{copies[job.content]}"
            job = attrs.evolve(job, item=attrs.evolve(job.item, key=key))
        jobs.append(_checked(job, frames, taken))
    return jobs


def _checked(job: JobLine, frames: dict[str, str | None], keys: dict[str, int]) -> JobLine:
    """The line, or its error if a frame file is unusable or its key is taken.

    :param frames: what is wrong with each frame file read so far (``None``: nothing)
    :param keys: the line each key was first seen on
    """
    if job.item is None:
        return job
    for frame in job.item.local_frames:
        if frame not in frames:
            try:
                read_image(frame)
            except ValidationError as exc:
                frames[frame] = str(exc)
            else:
                frames[frame] = None
        problem = frames[frame]
        if problem is not None:
            return JobLine(job.line, None, f"line {job.line}: {problem}")
    key = job.item.key or str(job.line)
    if key in keys:
        return JobLine(job.line, None, f"line {job.line}: key {key!r} is also on line {keys[key]}")
    keys[key] = job.line
    return job


def _parse_line(number: int, raw: bytes, base: Path) -> JobLine:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return JobLine(number, None, f"line {number}: not UTF-8 text (byte {exc.start})")
    try:
        data = json.loads(text)
    except ValueError as exc:
        return JobLine(number, None, f"line {number}: not valid JSON ({exc})")
    except RecursionError:
        return JobLine(number, None, f"line {number}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        return JobLine(number, None, f"line {number}: expected a JSON object")
    problem = _not_text(data)
    if problem is not None:
        return JobLine(number, None, f"line {number}: {problem}")
    try:
        item = _item(data, base, number)
    except (LeonardoError, cattrs.BaseValidationError, TypeError, ValueError) as exc:
        detail = readable_errors(exc) if isinstance(exc, cattrs.BaseValidationError) else str(exc)
        return JobLine(number, None, f"line {number}: {detail}")
    written = json.dumps(
        {name: value for name, value in data.items() if name != "key"},
        sort_keys=True,
        ensure_ascii=False,
    )
    return JobLine(number, item, content=hashlib.sha256(written.encode()).hexdigest()[:16])


def _not_text(data: dict[str, Any]) -> str | None:
    """What in a parsed line is too deep or is not UTF-8 text, naming the field; or None.

    Walked with a stack, not recursion: the line may be as deep as the JSON reader allows.
    """
    stack: list[tuple[str, object, int]] = [("", data, 0)]
    while stack:
        where, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"{where.split('.')[0]}: nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, str) and not is_text(value):
            return f"{where or 'a field name'}: not text (a lone surrogate such as \\ud800)"
        if isinstance(value, dict):
            for key, inner in value.items():
                if not is_text(key):
                    return f"{where or 'a field name'}: a field name that is not text"
                stack.append((f"{where}.{key}" if where else key, inner, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", inner, depth + 1) for i, inner in enumerate(value))
    return None


def _item(data: dict[str, Any], base: Path, number: int) -> BatchItem:
    for name in ("prompt", "image"):
        if name not in data:
            raise ValidationError(name, None, "a required field of every line")
    check_names(data)
    spec = _specs.structure(data, JobSpec)
    if len(spec.prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(
            "prompt", f"<{len(spec.prompt)} characters>", f"at most {MAX_PROMPT_CHARS}"
        )
    return BatchItem.create(
        image=_frame(spec.image, base),
        end_image=None if spec.end_image is None else _frame(spec.end_image, base),
        key=spec.key,
        number=number,
        **spec.request_options(),
    )


def _frame(value: str, base: Path) -> str | Path:
    """A frame path made absolute against the batch file's folder (a ``Path``, which
    is what the library uploads); ids unchanged (a ``str``, which it sends as an id).

    A value naming something beside the batch file (a directory, say) is a path too, so
    that it is refused as not an image instead of being sent as an id.
    """
    if os.path.isabs(value):
        return Path(value)
    if is_local_image(value) or (base / value).exists():
        return base / value
    return value


_results = cattrs.Converter()


def result_line(line: int, result: BatchResult | None, error: str | None = None) -> ResultLine:
    """The results-file line for an input line's result (or for a line that was invalid)."""
    if result is None:
        return ResultLine(line, "ERROR", None, None, error, category="bad_line")
    return ResultLine(
        line=line,
        status=result.status,
        generation_id=result.generation_id,
        video=None if result.video is None else str(result.video),
        error=result.error,
        cost=None if result.cost is None else str(result.cost.amount),
        cost_unit=None if result.cost is None else result.cost.unit,
        prompt=result.prompt,
        category=_category(result),
        video_url=result.video_url,
        cost_estimated=result.cost_estimated,
    )


def _category(result: BatchResult) -> str:
    if result.status == "COMPLETE":
        return "complete"
    if result.status == "FAILED":
        return "failed"
    if result.generation_id is not None:
        return "error_after_submit"
    if result.uncertain:
        return "maybe_submitted"
    if (result.error or "").startswith(_BUDGET_SKIP):
        return "skipped_budget"
    return "error_before_submit"


def unfinished_line(line: int, prompt: str, generation_id: str | None) -> ResultLine:
    """The line of an item a stopped run left: still running on the server, or not begun."""
    if generation_id is not None:
        error = "still running on the server (paid for); --resume waits for it, no new submit"
        return ResultLine(
            line, "RUNNING", generation_id, None, error, None, None, prompt, "running"
        )
    error = "not started in this run; --resume runs it"
    return ResultLine(line, "PENDING", None, None, error, None, None, prompt, "not_started")


def write_results(lines: Iterable[ResultLine], stream: IO[str]) -> None:
    """Write results as JSON lines, in the order given."""
    for line in lines:
        stream.write(json.dumps(_results.unstructure(line), ensure_ascii=False) + "\n")


def sum_costs(lines: Iterable[ResultLine]) -> dict[str, Decimal]:
    """Total cost per unit over results lines."""
    totals: dict[str, Decimal] = {}
    for line in lines:
        if line.cost is not None and line.cost_unit is not None:
            totals[line.cost_unit] = totals.get(line.cost_unit, Decimal(0)) + Decimal(line.cost)
    return totals


def iter_results(stream: IO[str]) -> Iterator[ResultLine]:
    """Read a results file back."""
    for text in stream:
        if text.strip():
            yield _results.structure(json.loads(text), ResultLine)
