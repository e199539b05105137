"""``out/index.html``: one page to review a batch, rewritten while the batch runs.

The page is a single file with its CSS and script inline: it opens from disk with no
server and no network (only a ``--no-download`` video comes from its CDN URL). One card per
input line shows the start and end frames, the prompt, model, duration, size, cost, status
and error, and the video; buttons filter by status, a menu sorts by line or cost, and the
totals sit at the top. Every user string is escaped: a prompt is data, never markup.

Frame thumbnails are links to copies under ``out/frames/`` (hard links where the file
system allows, else copies), made once when the page is created and named by a hash of the
source path, so a frame shared by many lines is stored once. Inlining the frames as data
URIs would make each rewrite as large as all the frames together, and shrinking them needs
an imaging library the package does not depend on; copies keep ``out/`` a folder that can be
zipped and opened anywhere. A frame given as an image id has no pixels here: its card shows
the id instead.

Rewrites are atomic (a new file renamed over the old one) and throttled: at most one every
:data:`MIN_INTERVAL` seconds, and never more often than ten times the last render took, so
rendering costs at most a tenth of the run however large the batch (``benchmarks/page.py``
measures it). While the batch runs the page reloads itself every few seconds; the filter
and sort survive the reload in the address's ``#`` part.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Final

from .._batch import BatchItem, BatchResult, Charge, Ledger, money
from .._files import AtomicFile, FrameSource, remote_frame
from ._jobs_file import JobLine

__all__ = ["INDEX", "MIN_INTERVAL", "BatchPage", "render_page"]

_log = logging.getLogger(__name__)

INDEX: Final = "index.html"
FRAMES: Final = "frames"
#: The least seconds between two rewrites while the batch runs.
MIN_INTERVAL: Final = 2.0
#: Seconds between reloads of an open page while the batch runs.
RELOAD: Final = 5
STATUSES: Final = ("COMPLETE", "FAILED", "ERROR", "PENDING")
_IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".webp")


def _text(value: object) -> str:
    """Escape *value* for HTML text and double-quoted attributes alike."""
    return escape(str(value), quote=True)


def _href(path: Path | str, base: Path) -> str:
    """A relative, percent-encoded link from *base* to *path* (``#`` or ``?`` in a name stay
    part of the name)."""
    relative = os.path.relpath(os.fspath(path), os.fspath(base))
    return urllib.parse.quote(Path(relative).as_posix(), safe="/")


def _web_url(url: str | None) -> str | None:
    """*url* if it is http(s), else ``None``: no ``javascript:`` from a server's answer."""
    if url is None or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return None
    return url


class _Frames:
    """The page's copies of the local frames, made once: source path -> link."""

    def __init__(self, out: Path) -> None:
        self._out = out
        self._links: dict[str, str | None] = {}

    def link(self, source: FrameSource) -> str | None:
        """The page's link to *source*, copying it on first sight; ``None`` if it has none."""
        if not isinstance(source, (str, os.PathLike)) or remote_frame(source) is not None:
            return None
        given = os.fspath(source)
        if given not in self._links:
            path = Path(given)
            self._links[given] = self._copy(path, os.fspath(path.resolve()))
        return self._links[given]

    def _copy(self, path: Path, key: str) -> str | None:
        suffix = path.suffix.lower() if path.suffix.lower() in _IMAGE_SUFFIXES else ".img"
        target = self._out / FRAMES / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}{suffix}"
        try:
            target.parent.mkdir(exist_ok=True)
            if not target.exists():
                try:
                    os.link(path, target)
                except OSError:  # another file system, or links not allowed
                    shutil.copyfile(path, target)
        except OSError:
            return None
        return _href(target, self._out)


def _frame(label: str, source: FrameSource | None, frames: _Frames) -> str:
    if source is None:
        return ""
    link = frames.link(source)
    if link is not None:
        image = f'<img src="{link}" alt="{label} frame" loading="lazy">'
    else:
        ref = remote_frame(source)
        shown = f"{ref.type.value} {ref.id}" if ref is not None else f"{source} (not readable)"
        image = f'<div class="noimg">image id<br><code>{_text(shown)}</code></div>'
    return f"<figure>{image}<figcaption>{label}</figcaption></figure>"


def _facts(item: BatchItem | None) -> list[tuple[str, str]]:
    if item is None:
        return []
    request = item.spec
    size = (
        f"{request.width}x{request.height}"
        if request.width and request.height
        else " ".join(
            str(getattr(value, "value", value))
            for value in (request.resolution, request.orientation)
            if value is not None
        )
        or "default"
    )
    duration = "default" if request.duration is None else f"{request.duration} s"
    return [
        ("model", str(getattr(request.model, "value", request.model))),
        ("duration", duration),
        ("size", size),
    ]


#: A rendered card: the result and ``finished`` it was made for, its HTML and status.
_Cached = tuple[BatchResult | None, bool, str, str]


def _card(
    job: JobLine,
    result: BatchResult | None,
    finished: bool,
    out: Path,
    frames: _Frames,
    extras: list[Charge],
) -> tuple[str, str]:
    """One card's HTML and its status."""
    item = job.item
    error: str | None
    if item is None:
        status, error, prompt = "ERROR", f"bad line: {job.error}", ""
    elif result is None:
        status, prompt = "PENDING", item.spec.prompt
        error = "not finished in this run; resume with --resume" if finished else None
    else:
        status, error, prompt = result.status, result.error, result.prompt
    cost = None if result is None or result.cost is None else result.cost.amount
    facts = _facts(item)
    if result is not None:
        facts.append(("outcome", result.outcome.value.replace("_", " ")))
    if result is not None and result.cost is not None:
        facts.append(("cost", f"{result.cost.amount:f} {result.cost.unit}"))
    if result is not None and result.generation_id:
        facts.append(("generation", result.generation_id))
    for extra in extras:  # paid too, beyond the line's own generation
        cost_text = "unpriced" if extra.cost is None else f"{extra.cost.amount:f} {extra.cost.unit}"
        facts.append(
            ("extra paid", f"{extra.generation_id} ({cost_text}{', estimated' * extra.estimated})")
        )
    video = ""
    if result is not None and result.video is not None:
        video = _href(result.video, out)
    elif result is not None:
        known = result.video_url or (result.generation and result.generation.video_url)
        video = _web_url(known or None) or ""
    player = (
        f'<video src="{_text(video)}" controls muted preload="metadata"></video>'
        if video
        else '<div class="novideo">no video</div>'
        if finished or result
        else '<div class="novideo waiting">waiting</div>'
    )
    frame_html = ""
    if item is not None:
        frame_html = _frame("start", item.image, frames) + _frame("end", item.end_image, frames)
    rows = "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>" for k, v in facts)
    html = (
        f'<article class="card" data-status="{status}" data-line="{job.line}" '
        f'data-cost="{"" if cost is None else cost}">'
        f'<div class="media">{player}</div><div class="frames">{frame_html}</div>'
        f'<h2>line {job.line} <span class="status s-{status}">{status}</span></h2>'
        f'<p class="prompt">{_text(prompt)}</p><dl>{rows}</dl>'
        + (f'<p class="error">{_text(error)}</p>' if error else "")
        + "</article>"
    )
    return html, status


def render_page(
    title: str,
    jobs: list[JobLine],
    results: Mapping[str, BatchResult],
    *,
    ledger: Ledger,
    out: Path,
    finished: bool,
    frames: _Frames | None = None,
    cache: dict[int, _Cached] | None = None,
) -> str:
    """Return the whole page for *jobs* with the *results* so far.

    :param title: names the batch (the input file's name).
    :param ledger: the batch's money: what the page says was spent, the generations of
        unfinished lines included.
    :param out: the folder the page is written to; links are relative to it.
    :param finished: whether the run is over (no more reloads; unfinished lines say so).
    :param frames: the frame copies, kept from render to render.
    :param cache: cards by line, kept from render to render: a card is only rendered again
        when its result changed, so a rewrite is mostly one join.
    """
    frames = frames or _Frames(out)
    cache = {} if cache is None else cache
    cards, counts = [], dict.fromkeys(STATUSES, 0)
    for job in jobs:
        key = job.key
        result = None if key is None else results.get(key)
        cached = cache.get(job.line)
        if cached is None or cached[0] is not result or cached[1] != finished:
            extras = [] if key is None else ledger.extras(key)
            cached = (result, finished, *_card(job, result, finished, out, frames, extras))
            cache[job.line] = cached
        _, _, html, status = cached
        cards.append(html)
        counts[status] += 1
    spent = money(ledger.spent())
    estimated = ledger.estimated()
    if estimated:
        spent += f" ({money(estimated)} of it estimated: answers that named no cost)"
    if ledger.extra_count:
        spent += f", {ledger.extra_count} extra paid generations among them"
    state = "finished" if finished else "running"
    buttons = "".join(
        f'<button data-filter="{s}">{s.lower()} <b>{counts[s]}</b></button>' for s in STATUSES
    )
    done = len(jobs) - counts["PENDING"]
    return _PAGE.format(
        title=_text(title),
        reload="" if finished else f'<meta http-equiv="refresh" content="{RELOAD}">',
        state=state,
        updated=_text(datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")),
        done=done,
        lines=len(jobs),
        spent=_text(spent),
        buttons=buttons,
        cards="\n".join(cards),
        style=_STYLE,
        script=_SCRIPT,
    )


class BatchPage:
    """Keeps ``out/index.html`` up to date with a running batch's *results*.

    :param out: the batch's output folder.
    :param jobs: every input line, good or bad.
    :param results: the batch's results so far, by item key; the caller keeps adding to it.
    :param ledger: the batch's money, which the page's "spent" counts from.
    :param clock: seconds, for the throttle.
    """

    def __init__(
        self,
        out: Path,
        title: str,
        jobs: list[JobLine],
        results: Mapping[str, BatchResult],
        *,
        ledger: Ledger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = out / INDEX
        self._out, self._title, self._jobs, self._results = out, title, jobs, results
        self._ledger = ledger
        self._frames = _Frames(out)
        self._cache: dict[int, _Cached] = {}
        self._clock = clock
        self._next = 0.0
        #: How many times the page was written (for the benchmark and the tests).
        self.writes = 0
        self.write(finished=False)

    def changed(self) -> None:
        """Note that a result arrived; rewrite the page if the throttle allows."""
        if self._clock() >= self._next:
            self.write(finished=False)

    def write(self, *, finished: bool) -> None:
        """Render and swap in the page now (``finished`` at the end of the run).

        A page that cannot be written (disk full, folder gone) is logged, never raised: the
        review page must not stop a batch that is spending money.
        """
        started = time.perf_counter()  # real time, whatever clock schedules the writes
        try:
            self._write(finished)
        except OSError as exc:
            _log.warning("%s cannot be written: %s", self.path, exc)
        took = time.perf_counter() - started
        self._next = self._clock() + max(MIN_INTERVAL, 10 * took)

    def _write(self, finished: bool) -> None:
        page = render_page(
            self._title,
            self._jobs,
            self._results,
            ledger=self._ledger,
            out=self._out,
            finished=finished,
            frames=self._frames,
            cache=self._cache,
        )
        with AtomicFile(self.path) as target:
            target.write(page.encode("utf-8"))
            target.commit()
        self.writes += 1


_STYLE = """
:root{color-scheme:light dark;--bg:#f6f6f4;--card:#fff;--ink:#1d1d1f;--dim:#6b6b70;
--line:#ddd;--ok:#1f7a3d;--bad:#b3261e;--err:#8a5a00;--wait:#4a5a8a}
@media (prefers-color-scheme:dark){:root{--bg:#161618;--card:#222226;--ink:#eee;
--dim:#a0a0a8;--line:#3a3a40}}
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,sans-serif;background:var(--bg);
color:var(--ink)}header{position:sticky;top:0;z-index:1;background:var(--bg);
padding:12px 20px;border-bottom:1px solid var(--line)}h1{font-size:18px;margin:0 0 4px}
.meta{color:var(--dim);margin:0 0 8px}.totals b{font-size:16px}
nav{display:flex;flex-wrap:wrap;gap:6px;align-items:center}
button,select{font:inherit;padding:4px 10px;border:1px solid var(--line);border-radius:14px;
background:var(--card);color:var(--ink);cursor:pointer}button.on{background:var(--ink);
color:var(--bg)}main{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));
gap:14px;padding:16px 20px}.card{background:var(--card);border:1px solid var(--line);
border-radius:10px;padding:10px;overflow:hidden}.card[hidden]{display:none}
.media video,.waiting{width:100%;aspect-ratio:16/9;background:#000;border-radius:6px;
display:block}.novideo{display:grid;place-items:center;color:#aaa;background:var(--line);
border-radius:6px;height:32px}.novideo.waiting{height:auto;background:#000}
.frames{display:flex;gap:8px;margin:8px 0}figure{margin:0;width:96px}
figure img,.noimg{width:96px;height:54px;object-fit:cover;border-radius:4px;display:block;
background:var(--line)}.noimg{font-size:9px;padding:3px;overflow:hidden;
word-break:break-all;color:var(--dim)}figcaption{font-size:11px;color:var(--dim)}
h2{font-size:14px;margin:4px 0;display:flex;justify-content:space-between}
.status{font-size:12px;padding:1px 8px;border-radius:10px;color:#fff}
.s-COMPLETE{background:var(--ok)}.s-FAILED{background:var(--bad)}
.s-ERROR{background:var(--err)}.s-PENDING{background:var(--wait)}
.prompt{margin:4px 0 8px;white-space:pre-wrap;word-break:break-word}
dl{display:grid;grid-template-columns:auto 1fr;gap:1px 10px;margin:0;font-size:12px}
dt{color:var(--dim)}dd{margin:0;word-break:break-all}
.error{color:var(--bad);font-size:12px;margin:8px 0 0;word-break:break-word}
"""

_SCRIPT = """
(function(){
var main=document.getElementById('cards'),cards=Array.prototype.slice.call(main.children);
function state(){var s={filter:'all',sort:'line'};location.hash.slice(1).split('&')
.forEach(function(p){var kv=p.split('=');if(kv[0]in s&&kv[1])s[kv[0]]=kv[1];});return s;}
function apply(){var s=state();document.querySelectorAll('button[data-filter]')
.forEach(function(b){b.classList.toggle('on',b.dataset.filter===s.filter);});
document.getElementById('sort').value=s.sort;
cards.forEach(function(c){c.hidden=s.filter!=='all'&&c.dataset.status!==s.filter;});
var key=s.sort==='cost'?function(c){return -(parseFloat(c.dataset.cost)||0);}
:function(c){return +c.dataset.line;};
cards.slice().sort(function(a,b){return key(a)-key(b)||a.dataset.line-b.dataset.line;})
.forEach(function(c){main.appendChild(c);});}
function go(k,v){var s=state();s[k]=v;location.hash='filter='+s.filter+'&sort='+s.sort;}
document.querySelectorAll('button[data-filter]').forEach(function(b){
b.addEventListener('click',function(){go('filter',b.dataset.filter);});});
document.getElementById('sort').addEventListener('change',function(e){go('sort',e.target.value);});
window.addEventListener('hashchange',apply);apply();})();
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">{reload}
<title>{title}: {done}/{lines} done</title><style>{style}</style></head>
<body data-state="{state}"><header><h1>Batch {title}</h1>
<p class="meta">{state}, updated {updated}</p>
<p class="totals"><b>{done}</b> of <b>{lines}</b> lines done, spent <b>{spent}</b></p>
<nav><button data-filter="all">all <b>{lines}</b></button>{buttons}
<label>sort <select id="sort"><option value="line">by line</option>
<option value="cost">by cost</option></select></label></nav></header>
<main id="cards">
{cards}
</main><script>{script}</script></body></html>
"""
