"""Batch files: one JSON request per line in, one JSON result per line out.

Every input line gets exactly one output line, so a results file can be joined back to
its input by ``line``. A line that cannot become a valid request is reported with its
line number and becomes an ``ERROR`` result; the other lines are not held up by it.
That includes a frame file that is missing or not an image, a ``key`` another line
already has, and a field name that is not in :class:`._fields.JobSpec` (a typo that would
otherwise change what is bought): all are found while reading, before anything is sent.
Relative frame paths are read relative to the batch file, not the working directory.

Batch files are the command line's: the library's batch takes items
(:class:`~leonardo_async.BatchItem`) and gives back results, each with its
:class:`~leonardo_async.Outcome`, which a results line copies as its ``category``.

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

from .._batch import BatchItem, BatchResult, Charge, Outcome
from .._errors import LeonardoError, ValidationError
from .._files import is_local_image, read_image
from .._validate import is_text
from .._wire import STRICT_HOOKS
from ..models import Cost
from ._fields import JobSpec, check_names, readable_errors

__all__ = [
    "ExtraLine",
    "JobLine",
    "KeyScheme",
    "ResultLine",
    "input_digest",
    "read_jobs",
    "result_line",
    "unfinished_line",
    "with_extras",
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

    :param item: the line's item, its ``key`` always set (:func:`read_jobs` names every
        item it reads); ``None`` for a line that is not a valid request
    :param content: a hash of the line as written (its fields but ``key``, in any order
        and spacing): what names it in the journal when it has no ``key``. Frame paths
        count as written, so a folder moved with its frames keeps its names.
    """

    line: int
    item: BatchItem | None
    error: str | None = None
    content: str | None = attrs.field(default=None, repr=False)

    @property
    def key(self) -> str | None:
        """What names the line's item in the journal and the results; ``None`` for a
        line that is not an item."""
        return None if self.item is None else self.item.key


@attrs.frozen
class ExtraLine:
    """A paid generation of a line's item beyond the one its line names: a second job
    made when a lost submit was sent again before the listing showed the first, or the
    failed job of a line submitted again with ``--retry-failed``.

    :param cost_estimated: the listing names no price: ``cost`` is the estimate
    """

    generation_id: str
    cost: str | None = None
    cost_unit: str | None = None
    cost_estimated: bool = False


@attrs.frozen
class ResultLine:
    """One line of ``results.jsonl``.

    :param status: ``COMPLETE``, ``FAILED``, ``ERROR``, or, for a line a stopped run left
        unfinished, ``RUNNING`` (submitted and paid; ``--resume`` waits for it) or
        ``PENDING`` (not submitted, or, in category ``maybe_submitted``, sent with no
        answer yet)
    :param category: what became of the line: its item's :class:`~leonardo_async.Outcome`, as
        its result carries it (``bad_line``, ``running`` and ``not_started`` for a line
        that has no result)
    :param video: the downloaded file; ``video_url`` is the CDN's URL, when known
    :param cost: what the submit said the job costs, as the server stated it (``FAILED``
        jobs included: whether Leonardo charges them is not documented)
    :param cost_estimated: the answer named no cost (lost, a 504, a null ``cost``): ``cost``
        is the estimate for the same kind of job, counted in the totals all the same
    :param extra_generations: the line's other paid generations, beyond the one it names
        (see :class:`ExtraLine`), each counted in the totals
    """

    line: int
    status: str
    generation_id: str | None
    video: str | None
    error: str | None
    cost: str | None = None
    cost_unit: str | None = None
    prompt: str | None = None
    category: Outcome = Outcome.BAD_LINE
    video_url: str | None = None
    cost_estimated: bool = False
    extra_generations: tuple[ExtraLine, ...] = ()


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
        if job.item is not None:
            key = job.item.key
            if key is None:  # the one place a line's item is named
                key = str(number)
                if keys == "content" and job.content is not None:
                    copies[job.content] += 1
                    key = f"{job.content}#{copies[job.content]}"
                job = attrs.evolve(job, item=attrs.evolve(job.item, key=key))
            job = _checked(job, key, frames, taken)
        jobs.append(job)
    return jobs


def _checked(
    job: JobLine, key: str, frames: dict[str, str | None], keys: dict[str, int]
) -> JobLine:
    """The line, or its error if a frame file is unusable or its key is taken.

    :param key: its item's key
    :param frames: what is wrong with each frame file read so far (``None``: nothing)
    :param keys: the line each key was first seen on
    """
    assert job.item is not None  # a line that is not an item is checked no further
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
    check_names(data)  # first: a misspelt "promt" is a typo to name, not a missing prompt
    for name in ("prompt", "image"):
        if name not in data:
            raise ValidationError(name, None, "a required field of every line")
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
        return ResultLine(line, "ERROR", None, None, error, category=Outcome.BAD_LINE)
    return ResultLine(
        line=line,
        status=result.status,
        generation_id=result.generation_id,
        video=None if result.video is None else str(result.video),
        error=result.error,
        cost=None if result.cost is None else str(result.cost.amount),
        cost_unit=None if result.cost is None else result.cost.unit,
        prompt=result.prompt,
        category=result.outcome,
        video_url=result.video_url,
        cost_estimated=result.cost_estimated,
    )


def unfinished_line(
    line: int,
    prompt: str,
    generation_id: str | None,
    cost: Cost | None = None,
    *,
    cost_estimated: bool = False,
    maybe_submitted: bool = False,
) -> ResultLine:
    """The line of an item a stopped run left: still running on the server (with what
    its generation cost), its submit sent with no answer yet, or not begun.

    :param maybe_submitted: the run stopped while the submit was in flight (or its
        answer was lost): perhaps made and paid, so never "not started"
    """
    if generation_id is not None:
        error = "still running on the server (paid for); --resume waits for it, no new submit"
        return ResultLine(
            line,
            "RUNNING",
            generation_id,
            None,
            error,
            None if cost is None else str(cost.amount),
            None if cost is None else cost.unit,
            prompt,
            Outcome.RUNNING,
            cost_estimated=cost_estimated,
        )
    if maybe_submitted:
        error = (
            "stopped while its submit was in flight: perhaps made and paid; --resume looks "
            "for it in the listing before sending again"
        )
        return ResultLine(
            line, "PENDING", None, None, error, prompt=prompt, category=Outcome.MAYBE_SUBMITTED
        )
    error = "not started in this run; --resume runs it"
    return ResultLine(line, "PENDING", None, None, error, None, None, prompt, Outcome.NOT_STARTED)


def write_results(lines: Iterable[ResultLine], stream: IO[str]) -> None:
    """Write results as JSON lines, in the order given."""
    for line in lines:
        stream.write(json.dumps(_results.unstructure(line), ensure_ascii=False) + "\n")


def sum_costs(lines: Iterable[ResultLine]) -> dict[str, Decimal]:
    """Total cost per unit over results lines, their extra generations included.

    A results file read back, not a second account: the lines' costs are the ledger's
    charges as written, and this is the sum README promises a reader of the file.
    """
    totals: dict[str, Decimal] = {}
    for line in lines:
        paid: list[tuple[str | None, str | None]] = [(line.cost, line.cost_unit)]
        paid += [(extra.cost, extra.cost_unit) for extra in line.extra_generations]
        for amount, unit in paid:
            if amount is not None and unit is not None:
                totals[unit] = totals.get(unit, Decimal(0)) + Decimal(amount)
    return totals


def with_extras(line: ResultLine, charges: Iterable[Charge]) -> ResultLine:
    """The line with its item's other paid generations (the ledger's extras of it)."""
    extras = tuple(
        ExtraLine(
            charge.generation_id,
            None if charge.cost is None else str(charge.cost.amount),
            None if charge.cost is None else charge.cost.unit,
            charge.estimated,
        )
        for charge in charges
    )
    return attrs.evolve(line, extra_generations=extras) if extras else line


def iter_results(stream: IO[str]) -> Iterator[ResultLine]:
    """Read a results file back."""
    for text in stream:
        if text.strip():
            yield _results.structure(json.loads(text), ResultLine)
