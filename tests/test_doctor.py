"""``leonardo-async doctor`` against the simulator over loopback: with the documented
behaviour every check holds, and with a knob flipped the matching check says "not held"."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from _cli import FAST_POLL, cli
from _helpers import DEADLINE, FAST, KEY, NO_LIMITS, eventually, requests_to
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import LeonardoClient
from leonardo_async.cli import main
from leonardo_async.cli._doctor import diagnose, execute
from leonardo_async.cli._findings import apply_findings, load_findings
from leonardo_async.cli._frames import START, frame_png
from leonardo_async.cli._spend import SpendOptions
from leonardo_async.cli._transcript import Transcript, redact_json, redact_url
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

#: Long enough that the first job still runs while the queue probe submits past the slots.
PROBE_JOB = JobDurations.fixed(3.0)


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """The shipped fixture's simulator here: two slots (queueing behind them, as
    documented) and short jobs."""
    return SimulatorConfig(
        api_key=KEY, durations=JobDurations.fixed(0.2), concurrency_slots=2, max_running=2
    )


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test's findings cache is its own, so no test reads what another found."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def spend(*, probe: bool = False, listing_wait: float = 5.0) -> SpendOptions:
    """Paid checks with fast polls; the queue probe confirmed or declined."""
    return SpendOptions(lambda _: probe, FAST, timeout=30.0, listing_wait=listing_wait)


async def doctor(
    sim: Simulator, tmp_path: Path, options: SpendOptions | None = None
) -> tuple[int, dict[str, Any]]:
    """Run doctor with --json; return the exit code and the printed document."""
    out = io.StringIO()
    code = await execute(
        api_key=KEY,
        base_url=sim.base_url,
        spend=options,
        transcript_path=tmp_path / "transcript.json",
        as_json=True,
        cache=tmp_path / "findings.json",
        stdout=out,
        stderr=io.StringIO(),
    )
    document = json.loads(out.getvalue())
    assert document["exit_code"] == code
    return code, document


def statuses(document: dict[str, Any]) -> dict[str, str]:
    """Status by statement id."""
    return {f["id"]: f["status"] for f in document["findings"]}


async def populate(sim: Simulator, count: int) -> None:
    """Make ``count`` finished video generations on the account."""
    async with LeonardoClient(
        KEY, base_url=sim.base_url, limits=NO_LIMITS, poll_schedule=FAST
    ) as client:
        image = await client.upload_image(frame_png(START))
        for number in range(count):
            job = await client.image_to_video(prompt=f"earlier {number}", image=image)
            await client.wait(job.id, timeout=30)


FREE = ("key", "account", "listing.readable", "timestamps", "clock", "upload")


async def test_free_checks_hold_and_paid_ones_stay_unknown(sim: Simulator, tmp_path: Path) -> None:
    """Without --spend: every free check holds, nothing is submitted, paid ones are unknown."""
    await populate(sim, 3)
    created = len(sim.generations)
    code, document = await doctor(sim, tmp_path)
    found = statuses(document)
    assert code == 0
    assert {i: found[i] for i in (*FREE, "listing.video", "listing.order")} == dict.fromkeys(
        (*FREE, "listing.video", "listing.order"), "held"
    )
    assert {found[i] for i in ("submit.cost", "seed", "queue", "job.finishes")} == {"unknown"}
    assert len(sim.generations) == created
    assert requests_to(sim, "DELETE /init-image/{id}") == 1


async def test_spend_runs_one_job_and_every_check_holds(sim: Simulator, tmp_path: Path) -> None:
    """--spend with the probe confirmed: cost, finish, listing, seed, video, queue all hold."""
    sim.configure(durations=PROBE_JOB)
    code, document = await doctor(sim, tmp_path, spend(probe=True))
    found = statuses(document)
    assert code == 0, document
    held = (
        *FREE,
        "listing.video",
        "listing.order",
        "submit.cost",
        "job.finishes",
        "private",
        "seed",
    )
    assert {i: found[i] for i in (*held, "video.no_auth", "queue")} == dict.fromkeys(
        (*held, "video.no_auth", "queue"), "held"
    )
    assert "not held" not in found.values()
    # One job, then one more per slot (2) for the probe; each private, each VEO3_1FAST 4 s.
    jobs = sim.generations
    assert len(jobs) == 3
    assert {(j.model, j.duration, j.body["isPublic"]) for j in jobs} == {("VEO3_1FAST", 4, False)}


async def test_a_declined_probe_spends_one_job(sim: Simulator, tmp_path: Path) -> None:
    """Without confirmation the queue check is skipped (unknown) and one job is made."""
    code, document = await doctor(sim, tmp_path, spend(probe=False))
    assert (code, statuses(document)["queue"], len(sim.generations)) == (0, "unknown", 1)


async def test_a_listing_without_videos_is_not_held_and_tracking_goes_per_job(
    sim: Simulator, leonardo_simulator_factory: SimulatorFactory, tmp_path: Path
) -> None:
    """Listing hides video jobs: listing.video not held, exit 1, and the stored finding
    turns batched status off for the next client of that account (only of that one)."""
    sim.configure(listing_includes_video=False)
    code, document = await doctor(sim, tmp_path, spend(listing_wait=0.3))
    assert (code, statuses(document)["listing.video"]) == (1, "not held")
    stored = tmp_path / "findings.json"
    assert load_findings(stored, sim.base_url, sim.user_id)["listing.video"] == "not held"
    await doctor(sim, tmp_path)  # a free run cannot tell, and keeps what the paid one found
    assert load_findings(stored, sim.base_url, sim.user_id)["listing.video"] == "not held"
    async with LeonardoClient(KEY, base_url=sim.base_url) as client:
        await apply_findings(client, stored)
        assert client.batched_status is False
        assert client.listing_shows_videos is False
    async with leonardo_simulator_factory(SimulatorConfig(api_key=KEY)) as other:
        async with LeonardoClient(KEY, base_url=other.base_url) as client:
            await apply_findings(client, stored)
            assert client.batched_status is True
        assert requests_to(other, "GET /me") == 0  # nothing stored for it: nothing asked


async def test_a_lagging_listing_still_shows_the_job(sim: Simulator, tmp_path: Path) -> None:
    """A job that shows in the listing a moment late is found by the later looks."""
    sim.configure(listing_lag=1.0)
    code, document = await doctor(sim, tmp_path, spend(listing_wait=10.0))
    assert (code, statuses(document)["listing.video"]) == (0, "held")
    async with LeonardoClient(KEY, base_url=sim.base_url) as client:
        assert client.listing_shows_videos is False  # not known until seen or told
        await apply_findings(client, tmp_path / "findings.json")
        assert client.listing_shows_videos is True


async def test_an_oldest_first_listing_is_not_held(sim: Simulator, tmp_path: Path) -> None:
    """Listing order oldest first: listing.order not held."""
    await populate(sim, 3)
    sim.configure(listing_order="oldest")
    code, document = await doctor(sim, tmp_path)
    assert (code, statuses(document)["listing.order"]) == (1, "not held")


async def test_capped_listing_pages_are_not_held(sim: Simulator, tmp_path: Path) -> None:
    """A server that caps pages below 50 is seen when a second page follows a short one."""
    await populate(sim, 3)
    sim.configure(listing_max_limit=2)
    code, document = await doctor(sim, tmp_path)
    assert (code, statuses(document)["listing.page"]) == (1, "not held")


async def test_a_server_refusing_at_concurrency_is_not_held(sim: Simulator, tmp_path: Path) -> None:
    """Refuse at the slots: queue not held, and the stored finding holds the account's next
    client at its slots (no probe past them); a 429 without Retry-After says so too."""
    sim.configure(durations=PROBE_JOB, refuse_at_concurrency=True, retry_after_style="none")
    code, document = await doctor(sim, tmp_path, spend(probe=True))
    found = statuses(document)
    assert (code, found["queue"], found["retry_after"]) == (1, "not held", "not held")
    assert found["over_limit"] == "held"
    assert found["job.finishes"] == "held"
    assert len(sim.generations) == 2  # the third submit was refused
    async with LeonardoClient(KEY, base_url=sim.base_url) as client:
        slots = (await client.me()).concurrency_slots
        await apply_findings(client, tmp_path / "findings.json")
        assert client.server_queues is False
        assert await client.in_flight_bound() == slots  # no probe past the slots
    async with LeonardoClient(KEY, base_url=sim.base_url) as client:
        assert await client.in_flight_bound() == slots + 1  # without it: one probe


async def test_a_rejected_seed_is_not_held_and_the_job_still_runs(
    sim: Simulator, tmp_path: Path
) -> None:
    """Seed rejection: seed not held, the job is sent again without one and finishes, and
    the stored finding turns the random seed off for the account's next client."""
    sim.configure(reject_seed=True)
    code, document = await doctor(sim, tmp_path, spend())
    found = statuses(document)
    assert (code, found["seed"], found["job.finishes"]) == (1, "not held", "held")
    assert len(sim.generations) == 1
    async with LeonardoClient(KEY, base_url=sim.base_url) as client:
        await apply_findings(client, tmp_path / "findings.json")
        assert (client.auto_seed, client.batched_status) == (False, True)


async def test_a_null_cost_is_not_held(sim: Simulator, tmp_path: Path) -> None:
    """A submit answer without a usable price: submit.cost not held."""
    sim.configure(faults={"null_cost_rate": 1.0})
    code, document = await doctor(sim, tmp_path, spend())
    assert (code, statuses(document)["submit.cost"]) == (1, "not held")


async def test_a_server_clock_minutes_behind_is_not_held(sim: Simulator, tmp_path: Path) -> None:
    """The server's Date five minutes behind: clock not held (a lost submit could be missed)."""
    sim.configure(clock_offset=-300.0)
    code, document = await doctor(sim, tmp_path)
    assert (code, statuses(document)["clock"]) == (1, "not held")


async def test_a_broken_upload_is_not_held(sim: Simulator, tmp_path: Path) -> None:
    """Presigned uploads refused: upload not held."""
    sim.configure(faults={"upload_expired_rate": 1.0})
    code, document = await doctor(sim, tmp_path)
    assert (code, statuses(document)["upload"]) == (1, "not held")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("event", "expected"), [("image_generation.complete", "held"), ("video.complete", "not held")]
)
async def test_webhook_callbacks_for_the_job_are_heard(
    sim: Simulator, tmp_path: Path, event: str, expected: str
) -> None:
    """--webhook-listen: the documented callback for the job holds; another event type is
    not the one the receiver handles, so the statement does not hold."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/leonardo/webhook"
    sim.configure(webhook_url=url, webhook_key="cb-key", webhook_event_type=event)
    options = attrs.evolve(spend(), webhook=("127.0.0.1", port), callback_key="cb-key")
    _, document = await doctor(sim, tmp_path, options)
    assert statuses(document)["webhook.video"] == expected


# --- the command line ---------------------------------------------------------------------


async def test_an_unknown_key_exits_3_naming_the_variable_not_the_value(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused key: exit 3, a message naming LEONARDO_API_KEY, one request, no value shown."""
    key = "0b4c2f9e-1111-4a2b-8c3d-9e8f7a6b5c4d"
    monkeypatch.setenv("LEONARDO_API_KEY", key)
    code = await cli("doctor", "--transcript", tmp_path / "t.json")
    printed = capsys.readouterr()
    assert code == 3
    assert "LEONARDO_API_KEY" in printed.err
    assert key not in printed.out + printed.err + (tmp_path / "t.json").read_text()
    assert "not shaped like a UUID" not in printed.err  # it is one, just not known
    assert requests_to(sim, "GET /me") == 1


async def test_a_malformed_key_exits_3_saying_keys_are_uuids(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A key that is not a UUID: exit 3 after at most two requests, with a hint about its shape."""
    monkeypatch.setenv("LEONARDO_API_KEY", "not-a-uuid-MALFORMED")
    code = await cli("doctor", "--transcript", tmp_path / "t.json")
    err = capsys.readouterr().err
    assert code == 3
    assert "LEONARDO_API_KEY" in err
    assert "not shaped like a UUID" in err
    assert "MALFORMED" not in err
    assert sum(sim.statistics().requests.values()) <= 2


async def test_the_cli_asks_before_the_probe_and_without_a_terminal_skips_it(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--spend without --yes: no terminal to ask on, so the probe is skipped, one job made;
    the transcript file holds neither the key nor presigned upload fields."""
    transcript = tmp_path / "t.json"
    code = await cli("doctor", "--spend", "--transcript", transcript, *FAST_POLL)
    printed = capsys.readouterr()
    assert code == 0, printed
    assert "--yes confirms" in printed.err
    assert "unknown   a submit past the concurrency slots" in printed.out
    assert len(sim.generations) == 1
    text = transcript.read_text()
    assert KEY not in text
    assert "X-Amz-Signature" not in text
    assert "Policy" not in text
    assert "generations-image-to-video" in text


async def test_ctrl_c_during_the_paid_job_exits_130_and_keeps_the_transcript(
    sim: Simulator, tmp_path: Path
) -> None:
    """SIGINT while the job runs: exit 130, and the transcript so far names the submit."""
    sim.configure(durations=JobDurations.fixed(600))
    transcript = tmp_path / "t.json"
    command = [sys.executable, "-m", "leonardo_async", "doctor", "--spend",
               "--transcript", str(transcript), *FAST_POLL]  # fmt: skip
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
        with anyio.fail_after(DEADLINE):
            # The second /me follows the submit's answer (it reads the balance change).
            await eventually(lambda: requests_to(sim, "GET /me") >= 2)
            process.send_signal(signal.SIGINT)
            code = await process.wait()
    (generation,) = sim.generations
    assert code == 130
    document = json.loads(transcript.read_text())
    assert document["interrupted"] is True
    assert generation.id in transcript.read_text()


def test_help_states_what_spend_costs() -> None:
    """The help text says --spend runs a paid job and the probe one more per slot."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", out)
        assert main(["doctor", "--help"]) == 0
    text = " ".join(out.getvalue().split())
    assert "ONE PAID JOB" in text
    assert "VEO3_1FAST, 720p, 4 s, private" in text
    assert "one more such job per concurrency slot" in text


# --- the transcript -----------------------------------------------------------------------


class RawUploads:
    """Records the unredacted ``uploadInitImage`` answers, to check the transcript against."""

    def __init__(self) -> None:
        self.fields: list[dict[str, str]] = []

    def trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_response_chunk_received.append(self._on_chunk)
        return config

    async def _on_chunk(self, _: aiohttp.ClientSession, __: SimpleNamespace, params: Any) -> None:
        if str(params.url).endswith("/init-image"):
            target = json.loads(params.chunk)["uploadInitImage"]
            self.fields.append(json.loads(target["fields"]))


async def test_the_transcript_never_holds_the_key_or_presigned_fields(
    sim: Simulator, tmp_path: Path
) -> None:
    """Every exchange is recorded; no presigned field value, object key or API key is."""
    raw = RawUploads()
    transcript = Transcript(sim.base_url, secrets=[KEY])
    configs = [transcript.trace_config(), raw.trace_config()]
    async with (
        aiohttp.ClientSession(trace_configs=configs) as session,
        LeonardoClient(KEY, base_url=sim.base_url, poll_schedule=FAST, session=session) as client,
    ):
        await diagnose(client, transcript, spend=spend())
    path = tmp_path / "t.json"
    transcript.write(path, {"base_url": sim.base_url})
    text = path.read_text()
    assert len(raw.fields) == 2  # the probe image and the job's frame
    secrets = [v for f in raw.fields for k, v in f.items() if k not in ("bucket", "Content-Type")]
    assert secrets
    assert not [s for s in secrets if s in text]
    assert KEY not in text
    methods = [e["method"] for e in json.loads(text)["exchanges"]]
    assert methods.count("POST") == 5  # 2 init-image, 2 presigned uploads, 1 submit


def test_presigned_url_queries_are_redacted_but_paging_is_kept() -> None:
    """A signed CDN URL loses its signature; the listing's offset and limit stay readable."""
    signed = "https://cdn.example/v.mp4?X-Amz-Signature=abc123&X-Amz-Credential=cred"
    assert "abc123" not in redact_url(signed)
    assert "cred" not in redact_url(signed)
    assert redact_url("https://api.example/x?offset=5&limit=50").endswith("offset=5&limit=50")


#: Bodies in lowercase only, so an upper-case secret can only be where the test puts it.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text("abc:/?=&. 0123", max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text("abcxyz", max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
upper = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=9, max_size=20)


@given(
    body=json_values,
    secret=upper.map(lambda s: "KEY" + s),
    fields=st.dictionaries(
        st.sampled_from(["Policy", "X-Amz-Signature"]), upper.map("SIG".__add__)
    ),
)
def test_redaction_leaves_no_secret_and_no_presigned_value(
    body: Any, secret: str, fields: dict[str, str]
) -> None:
    """Wherever the key sits in a body, and whatever an upload target holds, neither survives."""
    document = {
        "wrapped": [body, f"x{secret}y", f"https://cdn.example/v.mp4?sig={secret}"],
        secret: body,
        "target": {"fields": json.dumps(fields), "key": "user/initImages/i.png", "id": "i"},
    }
    text = json.dumps(redact_json(document, [secret]))
    assert secret not in text
    assert "SIG" not in text
    assert "initImages" not in text
    assert '"id": "i"' in text  # what is not secret stays readable
