"""``out/index.html``: the page a batch leaves to review it, checked in a real chromium.

The browser test runs a batch on the simulator, opens the page from disk in headless
chromium (DevTools protocol) and reads the DOM: one card per input line, every video's
metadata loaded, the filter and the sort working, a hostile prompt shown as text. The
other tests read the HTML file itself.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import pytest
from _browser import chromium
from _images import png_bytes

from leonardo_async._batch import BatchResult, ItemState, Ledger
from leonardo_async._batch._journal import JournalEntry
from leonardo_async.cli import main
from leonardo_async.cli._jobs_file import read_jobs
from leonardo_async.cli._report import INDEX, MIN_INTERVAL, BatchPage, _web_url
from leonardo_async.models import Cost
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

KEY = "sk-page-CANARY-7c1d2e3f-never-print"
FAST = ("--poll-initial", "0.05", "--poll-max", "0.2", "--spm", "6000", "--rpm", "60000")
HOSTILE = '</p><script>window.pwned=1</script><img src=x onerror="window.pwned=2"> & "q"'


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """The shipped fixture's simulator here: short jobs, a third of them failing."""
    return SimulatorConfig(
        api_key=KEY, durations=JobDurations.fixed(0.05), seed=5, failure_rate=0.3
    )


def _jobs(folder: Path) -> Path:
    """Eight lines: frames with odd names, an image id, the hostile prompt, a bad line."""
    (folder / "start #1.png").write_bytes(png_bytes(32, 18, (200, 60, 40)))
    (folder / "end.png").write_bytes(png_bytes(32, 18, (40, 60, 200)))
    good = [
        {"prompt": f"shot {i}", "image": "start #1.png", "end_image": "end.png", "duration": 4}
        for i in range(5)
    ]
    lines = [
        *good[:2],
        {"prompt": HOSTILE, "image": "start #1.png"},
        {"prompt": "an id the server never made", "image": "1234abcd-0000-4000-8000-ffffffffffff"},
        {"image": "start #1.png"},  # no prompt: a bad line
        *good[2:],
    ]
    path = folder / "jobs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


async def _batch(jobs: Path, out: Path, *extra: str) -> int:
    argv = ["batch", str(jobs), "--out", str(out), *FAST, *extra]
    with anyio.fail_after(60):
        return await anyio.to_thread.run_sync(main, argv)


def _results(out: Path) -> list[dict[str, Any]]:
    text = (out / "results.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


class _Cards(HTMLParser):
    """The cards of a page: their attributes, and the ``src`` of media inside them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.cards: list[dict[str, str | None]] = []
        self.sources: list[tuple[str, str]] = []
        self.scripts = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "article":
            self.cards.append(values)
        if tag in ("video", "img") and values.get("src"):
            self.sources.append((tag, str(values["src"])))
        if tag == "script":
            self.scripts += 1


async def test_a_finished_batch_reads_in_chromium(sim: Simulator, tmp_path: Path) -> None:
    """Chromium shows one card per line, loads every video's metadata, filters, sorts,
    and shows the hostile prompt as text; a screenshot is saved beside the test."""
    out = tmp_path / "out"
    assert await _batch(_jobs(tmp_path), out) in (1, 2)
    results = _results(out)
    statuses = {line["line"]: line["status"] for line in results}
    complete = sum(status == "COMPLETE" for status in statuses.values())
    assert complete >= 2
    assert "FAILED" in statuses.values()
    page = out / INDEX
    async with chromium(tmp_path / "profile") as browser:
        await browser.call("Page.navigate", url=page.as_uri())
        await browser.until("document.readyState === 'complete'")
        shown = await browser.evaluate(
            "Array.from(document.querySelectorAll('.card'))"
            ".map(c => [+c.dataset.line, c.dataset.status])"
        )
        assert dict(shown) == statuses
        assert (
            await browser.until(
                "Array.from(document.querySelectorAll('video'))"
                ".every(v => v.readyState >= 1) && document.querySelectorAll('video').length"
            )
            == complete
        )
        sizes = await browser.evaluate(
            "Array.from(document.querySelectorAll('video'))"
            ".map(v => [v.videoWidth, v.videoHeight, Math.round(v.duration)])"
        )
        assert sizes == [[640, 360, 4]] * complete
        assert await browser.evaluate("typeof window.pwned") == "undefined"
        assert (
            await browser.evaluate(
                "document.querySelector('.card[data-line=\"3\"] .prompt').textContent"
            )
            == HOSTILE
        )
        assert (
            await browser.evaluate(
                "Array.from(document.images).filter(i => i.naturalWidth === 32).length"
            )
            == 2 * 6 - 1
        )  # start and end frame of every line with a file, line 3 has no end
        await browser.screenshot(tmp_path / "batch-page.png")

        await browser.evaluate("document.querySelector('button[data-filter=FAILED]').click()")
        await browser.until("location.hash.includes('FAILED')")
        visible = await browser.evaluate(
            "Array.from(document.querySelectorAll('.card')).filter(c => !c.hidden)"
            ".map(c => c.dataset.status)"
        )
        assert visible == ["FAILED"] * list(statuses.values()).count("FAILED")

        await browser.evaluate("location.hash = 'filter=all&sort=cost'")
        costs = await browser.until(
            "location.hash.includes('cost') && Array.from(document.querySelectorAll('.card'))"
            ".map(c => parseFloat(c.dataset.cost) || 0)"
        )
        assert costs == sorted(costs, reverse=True)
        await browser.screenshot(tmp_path / "batch-page-by-cost.png")


async def test_the_page_escapes_prompts_and_links_the_files(sim: Simulator, tmp_path: Path) -> None:
    """The hostile prompt is text; videos and frames are relative links that resolve."""
    out = tmp_path / "out"
    await _batch(_jobs(tmp_path), out)
    html = (out / INDEX).read_text(encoding="utf-8")
    assert HOSTILE not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    parsed = _Cards(html)
    assert parsed.scripts == 1  # ours, and nothing a prompt smuggled in
    assert len(parsed.cards) == 8
    assert 'http-equiv="refresh"' not in html  # finished: the page stops reloading
    for _, src in parsed.sources:
        assert not re.match(r"[a-z]+:", src), src  # relative: the folder can move
        assert (out / unquote(src)).is_file(), src
    frames = sorted(p.name for p in (out / "frames").iterdir())
    assert len(frames) == 2  # two distinct frame files, stored once each
    assert "image id" in html
    assert "1234abcd-0000-4000-8000-ffffffffffff" in html
    assert "bad line" in html


async def test_no_download_links_the_cdn(sim: Simulator, tmp_path: Path) -> None:
    """With --no-download each complete card plays the video's CDN URL."""
    out = tmp_path / "out"
    sim.configure(failure_rate=0.0)
    jobs = tmp_path / "jobs.jsonl"
    (tmp_path / "start.png").write_bytes(png_bytes())
    jobs.write_text('{"prompt": "a", "image": "start.png"}\n', encoding="utf-8")
    assert await _batch(jobs, out, "--no-download") == 0
    videos = [src for tag, src in _Cards((out / INDEX).read_text()).sources if tag == "video"]
    assert len(videos) == 1
    assert videos[0].startswith(f"{sim.storage_url}/cdn/")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_page_shows_progress_and_is_rewritten_at_most_every_interval(
    tmp_path: Path,
) -> None:
    """The page exists before any result, lists waiting lines as PENDING, and results
    arriving faster than the interval are written together."""
    (tmp_path / "f.png").write_bytes(png_bytes())
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text(
        "".join(f'{{"prompt": "p{i}", "image": "f.png"}}\n' for i in range(4)), encoding="utf-8"
    )
    jobs = read_jobs(jobs_file)
    results: dict[str, BatchResult] = {}
    ledger = Ledger()
    clock = _Clock()
    page = BatchPage(tmp_path, "jobs.jsonl", jobs, results, ledger=ledger, clock=clock)
    first = (tmp_path / INDEX).read_text()
    assert [c["data-status"] for c in _Cards(first).cards] == ["PENDING"] * 4
    assert 'http-equiv="refresh"' in first
    for job in jobs[:3]:
        assert job.item is not None
        key = str(job.item.key)
        cost = Cost(Decimal(1070), "CREDITS")
        results[key] = BatchResult(key, job.line, "COMPLETE", "p", cost=cost)
        ledger.record(
            JournalEntry(
                key, job.line, ItemState.COMPLETE, "f", generation_id=f"g{key}",
                cost_amount="1070", cost_unit="CREDITS",
            )
        )  # fmt: skip
        page.changed()
    assert page.writes == 1  # no time passed: nothing rewritten
    clock.now += MIN_INTERVAL
    page.changed()
    assert page.writes == 2
    statuses = [c["data-status"] for c in _Cards((tmp_path / INDEX).read_text()).cards]
    assert statuses == ["COMPLETE"] * 3 + ["PENDING"]
    page.write(finished=True)
    final = (tmp_path / INDEX).read_text()
    assert "3210 CREDITS" in final
    assert "not finished in this run; resume with --resume" in final
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd"]
)
def test_a_video_url_that_is_not_http_is_not_linked(tmp_path: Path, url: str) -> None:
    """A server answer naming a non-http(s) video URL gets no player."""
    assert _web_url(url) is None
    assert _web_url("https://cdn.example/v.mp4") == "https://cdn.example/v.mp4"


def test_a_page_that_cannot_be_written_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing page write (here a folder in its place) never stops the batch."""
    (tmp_path / INDEX).mkdir()
    page = BatchPage(tmp_path, "jobs.jsonl", [], {}, ledger=Ledger())
    page.write(finished=True)
    assert page.writes == 0
    assert f"{tmp_path / INDEX} cannot be written" in caplog.text
    assert not list(tmp_path.glob(".*.part"))
