"""An item's key is set once: by its own line, by the batch file's reader, or by its
position in a batch; everything after reads that key and no other."""

from __future__ import annotations

from pathlib import Path

from test_cli_batch import ON_BATCH_SIMULATOR, batch, results, write_jobs

from leonardo_async.cli._jobs_file import read_jobs
from leonardo_async.simulator import Simulator

pytestmark = ON_BATCH_SIMULATOR


def test_a_line_keeps_its_own_key_even_empty(folder: Path) -> None:
    """A line's own ``key`` is its name, whatever it is: an empty one is not replaced by
    the line's number, so it never collides with a line named by that number."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "one", "image": "start.png", "key": ""},
        {"prompt": "two", "image": "start.png", "key": "1"},
        {"prompt": "three", "image": "start.png"},
    )
    read = read_jobs(jobs)
    assert [job.error for job in read] == [None, None, None]
    assert [job.key for job in read[:2]] == ["", "1"]
    assert read[2].key is not None
    assert [job.key for job in read_jobs(jobs, keys="line")] == ["", "1", "3"]


def test_a_bad_line_has_no_key(folder: Path) -> None:
    """A line that is not an item names nothing in the journal."""
    jobs = write_jobs(folder / "jobs.jsonl", "not json")
    (job,) = read_jobs(jobs)
    assert (job.item, job.key) == (None, None)


async def test_a_batch_reports_each_line_by_the_key_it_ran_under(
    sim: Simulator, folder: Path
) -> None:
    """The results of lines named ``""`` and ``"1"`` are each their own line's."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "one", "image": "start.png", "key": ""},
        {"prompt": "two", "image": "start.png", "key": "1"},
    )
    out = folder / "out"
    assert await batch(jobs, out) == 0
    lines = results(out)
    assert [(line["line"], line["prompt"], line["category"]) for line in lines] == [
        (1, "one", "complete"),
        (2, "two", "complete"),
    ]
    assert sim.statistics().generations_created == 2
