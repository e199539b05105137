"""Batch files: JSONL lines in (each checked on its own, with its line number), results out."""

from __future__ import annotations

import io
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from _helpers import FAST, KEY, NO_LIMITS, QUICK_RETRY
from _images import png_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leonardo_async import BatchResult, BatchSubmitter, Cost, LeonardoClient, ValidationError
from leonardo_async._batch._ledger import Charge
from leonardo_async.cli._fields import FIELDS, check_names
from leonardo_async.cli._jobs_file import (
    MAX_PROMPT_CHARS,
    ResultLine,
    input_digest,
    iter_results,
    read_jobs,
    result_line,
    sum_costs,
    with_extras,
    write_results,
)
from leonardo_async.simulator import JobDurations, Simulator


def write_jobs(path: Path, *lines: str | bytes | dict[str, Any]) -> Path:
    """Write a batch file: dicts as JSON, strings and bytes as they are."""
    chunks = []
    for line in lines:
        if isinstance(line, dict):
            chunks.append(json.dumps(line).encode())
        elif isinstance(line, str):
            chunks.append(line.encode())
        else:
            chunks.append(line)
    path.write_bytes(b"\n".join(chunks) + b"\n")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder holding start.png, a real image."""
    (tmp_path / "start.png").write_bytes(png_bytes())
    return tmp_path


def test_each_bad_line_is_reported_with_its_number_and_the_rest_are_read(folder: Path) -> None:
    """Eleven kinds of broken line each get a numbered error; the good lines around them parse."""
    good = {"prompt": "fine", "image": "start.png"}
    path = write_jobs(
        folder / "jobs.jsonl",
        good,  # 1
        "this is not json",  # 2
        "[1, 2, 3]",  # 3
        {"image": "start.png"},  # 4: no prompt
        {"prompt": "no frame"},  # 5: no image
        {"prompt": "five", "image": "start.png", "duration": 5},  # 6
        {"prompt": "text", "image": "start.png", "duration": "8"},  # 7
        b'{"prompt": "caf\xe9", "image": "start.png"}',  # 8: Latin-1, not UTF-8
        {"prompt": "x" * (MAX_PROMPT_CHARS + 1), "image": "start.png"},  # 9
        {"prompt": "who", "image": "start.png", "model": "VEO9_ULTRA"},  # 10
        {"prompt": "gone", "image": "missing.png"},  # 11: no such file
        {"prompt": "fake", "image": "fake.png"},  # 12: a file, not an image
        {**good, "prompt": "also fine"},  # 13
    )
    (folder / "fake.png").write_text("not an image")
    jobs = read_jobs(path)
    assert [job.line for job in jobs] == list(range(1, 14))
    assert [job.line for job in jobs if job.item is not None] == [1, 13]
    errors = {job.line: job.error or "" for job in jobs if job.item is None}
    expected = {
        2: "not valid JSON",
        3: "expected a JSON object",
        4: "prompt",
        5: "image",
        6: "duration=5",
        7: "duration",
        8: "not UTF-8",
        9: f"at most {MAX_PROMPT_CHARS}",
        10: "VEO9_ULTRA",
        11: "missing.png",
        12: "PNG, JPEG or WebP",
    }
    for line, fragment in expected.items():
        assert errors[line].startswith(f"line {line}: "), errors[line]
        assert fragment in errors[line], errors[line]
    assert len(errors[9]) < 200  # the prompt itself is not echoed back


def test_blank_lines_and_comments_keep_line_numbers(folder: Path) -> None:
    """Blank and '#' lines are skipped, and later lines keep their real numbers."""
    path = write_jobs(
        folder / "jobs.jsonl",
        "# a comment",
        "",
        {"prompt": "third line", "image": "start.png"},
        "   ",
    )
    (job,) = read_jobs(path, keys="line")
    assert job.line == 3
    assert job.item is not None
    assert job.item.key == "3"
    (by_content,) = read_jobs(path)
    assert by_content.line == 3
    assert by_content.item is not None
    assert by_content.item.key == f"{by_content.content}#1"


def test_lines_are_named_by_content_and_copies_by_their_turn(folder: Path) -> None:
    """The same request twice is two items (#1, #2) wherever they stand; moving a line
    keeps its name."""
    one = {"prompt": "same", "image": "start.png"}
    other = {"prompt": "other", "image": "start.png"}
    first = read_jobs(write_jobs(folder / "a.jsonl", one, other, one))
    moved = read_jobs(write_jobs(folder / "b.jsonl", other, one, one))
    keys = [job.item.key for job in first if job.item is not None]
    assert keys[0].endswith("#1")
    assert keys[2] == keys[0][:-1] + "2"
    assert sorted(keys) == sorted(job.item.key for job in moved if job.item is not None)


def test_relative_frames_resolve_against_the_files_folder(
    folder: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'start.png' means the file beside the batch file, whatever the working directory."""
    (folder / "sub").mkdir()
    (folder / "sub" / "end.png").write_bytes(png_bytes(rgb=(1, 2, 3)))
    path = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "a", "image": "start.png", "end_image": "sub/end.png"},
        {"prompt": "b", "image": "an-image-id"},
    )
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    first, second = read_jobs(path)
    assert first.item is not None
    assert second.item is not None
    assert first.item.local_frames == [str(folder / "start.png"), str(folder / "sub" / "end.png")]
    assert second.item.local_frames == []
    assert second.item.image == "an-image-id"


def test_a_key_used_twice_is_an_error_on_the_second_line(folder: Path) -> None:
    """Two lines with one key would share a journal row: the second is refused."""
    path = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "a", "image": "start.png", "key": "shot-1"},
        {"prompt": "b", "image": "start.png", "key": "shot-1"},
        {"prompt": "c", "image": "start.png", "key": "1"},  # the first line's default key
        {"prompt": "d", "image": "start.png"},
    )
    jobs = read_jobs(path, keys="line")
    assert [job.item is not None for job in jobs] == [True, False, True, True]
    assert jobs[1].error == "line 2: key 'shot-1' is also on line 1"
    assert jobs[2].item is not None
    assert jobs[2].item.key == "1"


def test_a_line_key_equal_to_another_lines_number_is_refused(folder: Path) -> None:
    """An explicit key that is another line's number collides with that line's default key."""
    path = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "a", "image": "start.png", "key": "2"},
        {"prompt": "b", "image": "start.png"},
    )
    jobs = read_jobs(path, keys="line")
    assert jobs[0].item is not None
    assert jobs[1].error == "line 2: key '2' is also on line 1"
    assert all(job.item is not None for job in read_jobs(path))  # named by content


def test_an_unreadable_file_is_a_validation_error(tmp_path: Path) -> None:
    """A batch file that cannot be read is refused as a whole."""
    with pytest.raises(ValidationError, match="jobs file"):
        read_jobs(tmp_path / "nope.jsonl")


def test_input_digest_changes_with_the_bytes(tmp_path: Path) -> None:
    """The input fingerprint follows the file's bytes."""
    path = tmp_path / "jobs.jsonl"
    path.write_text("a\n")
    first = input_digest(path)
    path.write_text("b\n")
    assert input_digest(path) != first


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_lines = st.dictionaries(
    st.sampled_from(["prompt", "image", "duration", "model", "seed", "width", "key", "extra"]),
    _json,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(lines=st.lists(_lines | st.binary(max_size=30), min_size=1, max_size=6))
def test_any_line_gives_an_item_or_a_numbered_error(folder: Path, lines: list[Any]) -> None:
    """Whatever a line holds, reading never raises: each is an item or a 'line N:' error."""
    encoded = [
        json.dumps(line).encode() if isinstance(line, dict) else line.replace(b"\n", b" ")
        for line in lines
    ]
    path = folder / "fuzz.jsonl"
    path.write_bytes(b"\n".join(encoded))
    for job in read_jobs(path):
        assert (job.item is None) != (job.error is None)
        if job.error is not None:
            assert job.error.startswith(f"line {job.line}: ")


def test_results_round_trip_through_jsonl() -> None:
    """Results lines are written as JSON objects and read back equal, costs summed per unit."""
    result = BatchResult(
        key="1",
        index=0,
        status="COMPLETE",
        prompt="héllo",
        generation_id="g1",
        video=Path("/out/00000-hello-g1.mp4"),
        cost=Cost(amount=Decimal("2140"), unit="CREDITS"),
    )
    extra = Charge("g0", "1", Cost(Decimal("2140"), "CREDITS"), estimated=True)
    lines = [
        with_extras(result_line(1, result), [extra]),
        result_line(2, None, "line 2: not valid JSON"),
    ]
    stream = io.StringIO()
    write_results(lines, stream)
    records = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert records[0] == {
        "line": 1,
        "status": "COMPLETE",
        "generation_id": "g1",
        "video": "/out/00000-hello-g1.mp4",
        "error": None,
        "cost": "2140",
        "cost_unit": "CREDITS",
        "prompt": "héllo",
        "category": "complete",
        "video_url": None,
        "cost_estimated": False,
        "extra_generations": [
            {"generation_id": "g0", "cost": "2140", "cost_unit": "CREDITS", "cost_estimated": True}
        ],
    }
    assert records[1]["status"] == "ERROR"
    assert records[1]["category"] == "bad_line"
    assert records[1]["error"] == "line 2: not valid JSON"
    stream.seek(0)
    back = list(iter_results(stream))
    assert back == lines
    assert all(isinstance(line, ResultLine) for line in back)
    assert sum_costs(back) == {"CREDITS": 4280}  # the extra generation is paid too


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_fields_under_extra_pass_through_to_the_request_body(
    sim: Simulator, folder: Path
) -> None:
    """Fields under "extra" reach the API body exactly as written; known ones by their names."""
    path = write_jobs(
        folder / "jobs.jsonl",
        {
            "prompt": "pass it on",
            "image": "start.png",
            "duration": 4,
            "negative_prompt": "blur",
            "extra": {"frameInterpolation": True, "styleIds": ["s1"]},
        },
    )
    (job,) = read_jobs(path)
    assert job.item is not None
    async with (
        LeonardoClient(
            KEY, base_url=sim.base_url, limits=NO_LIMITS, poll_schedule=FAST, retry=QUICK_RETRY
        ) as client,
        BatchSubmitter(client) as batch,
    ):
        with anyio.fail_after(30):
            summary = await batch.run([job.item])
        assert summary.complete == 1
        (generation,) = sim.generations
    body = generation.body
    assert body["frameInterpolation"] is True
    assert body["styleIds"] == ["s1"]
    assert body["negativePrompt"] == "blur"
    assert body["duration"] == 4
    assert body["prompt"] == "pass it on"
    assert "extra" not in body


@given(
    field=st.sampled_from([f for f in FIELDS if len(f) >= 4]),
    where=st.integers(min_value=0),
    doubled=st.booleans(),
)
def test_a_one_letter_typo_is_a_line_error_that_names_the_field(
    field: str, where: int, doubled: bool
) -> None:
    """A field name with one letter doubled or dropped is refused, suggesting the field."""
    i = where % len(field)
    typo = field[:i] + field[i] + field[i:] if doubled else field[:i] + field[i + 1 :]
    if typo in FIELDS:
        return
    with pytest.raises(ValidationError, match=f'did you mean "{field}"'):
        check_names({"prompt": "p", "image": "i", typo: 4})


def test_durration_is_a_numbered_line_error_naming_duration(folder: Path) -> None:
    """The typo that once doubled a job's cost: "durration" is a line error naming duration."""
    path = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "ok", "image": "start.png"},
        {"prompt": "typo", "image": "start.png", "durration": 4},
        {"prompt": "camel", "image": "start.png", "negativePrompt": "x"},
    )
    good, typo, camel = read_jobs(path)
    assert good.item is not None
    assert typo.item is None
    assert typo.error is not None
    assert typo.error.startswith("line 2: ")
    assert 'did you mean "duration"' in typo.error
    assert camel.error is not None
    assert 'did you mean "negative_prompt"' in camel.error


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"duration": 4}, '"duration"'),
        ({"negativePrompt": "x"}, '"negative_prompt"'),
        ({"imageId": "x"}, '"image"'),
        ({"endFrameImage": {}}, '"end_image"'),
        (3, "a JSON object"),
    ],
)
def test_extra_cannot_set_what_the_line_sets_itself(folder: Path, extra: Any, named: str) -> None:
    """ "extra" must be an object of fields the line has no name for; else a line error."""
    path = write_jobs(folder / "jobs.jsonl", {"prompt": "p", "image": "start.png", "extra": extra})
    (job,) = read_jobs(path)
    assert job.error is not None
    assert named in job.error


@pytest.mark.parametrize(
    ("field", "given", "read"),
    [
        ("resolution", "1080", "RESOLUTION_1080"),
        ("resolution", "1080p", "RESOLUTION_1080"),
        ("resolution", "720p", "RESOLUTION_720"),
        ("resolution", "resolution_720", "RESOLUTION_720"),
        ("model", "veo3_1fast", "VEO3_1FAST"),
        ("model", "Veo3.1-Fast", "VEO3_1FAST"),
        ("orientation", "Portrait", "portrait"),
        ("orientation", "9:16", "portrait"),
    ],
)
def test_enum_values_are_read_forgivingly_where_unambiguous(
    folder: Path, field: str, given: str, read: str
) -> None:
    """Unambiguous spellings of a model, resolution or orientation become the canonical value."""
    path = write_jobs(folder / "jobs.jsonl", {"prompt": "p", "image": "start.png", field: given})
    (job,) = read_jobs(path)
    assert job.item is not None, job.error
    assert getattr(job.item.spec, field) == read


def test_cattrs_errors_read_as_field_and_problem(folder: Path) -> None:
    """A wrongly typed field reads "duration: expected an integer, got a string", no "@ $"."""
    path = write_jobs(folder / "jobs.jsonl", {"prompt": "p", "image": "start.png", "duration": "4"})
    (job,) = read_jobs(path)
    assert job.error == "line 1: duration: expected an integer, got a string"


def test_a_frame_that_is_a_directory_is_a_line_error_not_an_id(folder: Path) -> None:
    """A frame naming a folder beside the file is refused, never sent as an id."""
    (folder / "frames").mkdir()
    path = write_jobs(folder / "jobs.jsonl", {"prompt": "p", "image": "frames"})
    (job,) = read_jobs(path)
    assert job.item is None
    assert job.error is not None
    assert "image" in job.error


def test_a_line_keeps_its_name_when_its_folder_moves_or_its_fields_are_reordered(
    folder: Path, tmp_path: Path
) -> None:
    """The name is the line as written: frame paths relative to the file, field order and
    spacing aside; so a batch folder moved whole resumes onto the same journal rows."""
    path = write_jobs(folder / "jobs.jsonl", {"prompt": "here", "image": "start.png"})
    (before,) = read_jobs(path)
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    (moved / "jobs.jsonl").write_text('{ "image" : "start.png",  "prompt": "here" }\n')
    (after,) = read_jobs(moved / "jobs.jsonl")
    assert before.item is not None
    assert after.item is not None
    assert after.item.key == before.item.key
    assert after.item.fingerprint() != before.item.fingerprint()  # the frame's path moved
