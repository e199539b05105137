"""The webhook receiver, over real loopback HTTP: the simulator calls it back, tests POST to it."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leonardo_async import (
    GenerationFailedError,
    GenerationStatus,
    LeonardoClient,
    PollSchedule,
    TrackedJob,
    ValidationError,
    WebhookReceiver,
    WebhookStatistics,
)
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
KEY = "callback-key-for-tests"
EVENT = "image_generation.complete"
#: So slow that a job resolved within a test was resolved by its callback, not a poll.
SLOW_POLLS = PollSchedule(initial=30, max_interval=30)
#: A guard against hanging, never a timing assertion.
DEADLINE = 60.0


def callback(generation_id: str, status: str = "COMPLETE", **fields: Any) -> dict[str, Any]:
    """A Leonardo-style callback body for one generation."""
    images = (
        [{"id": "img-1", "url": "http://cdn.test/a.jpg", "motionMP4URL": "http://cdn.test/a.mp4"}]
        if status == "COMPLETE"
        else []
    )
    return {
        "type": EVENT,
        "object": "generation",
        "timestamp": 1764079650123,
        "api_version": "v1",
        "data": {"object": {"id": generation_id, "status": status, "images": images, **fields}},
    }


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """The shipped fixture's simulator here: jobs take a second, callbacks carry KEY."""
    return SimulatorConfig(durations=JobDurations.fixed(1.0), webhook_key=KEY)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[LeonardoClient]:
    """Yield a client of *sim* that polls so rarely no test sees a poll resolve a job."""
    async with LeonardoClient(sim.api_key, base_url=sim.base_url, poll_schedule=SLOW_POLLS) as c:
        yield c


@pytest.fixture
def receiver(client: LeonardoClient) -> WebhookReceiver:
    """Return a receiver feeding *client*'s tracker, requiring KEY."""
    return WebhookReceiver(client, callback_key=KEY)


@pytest.fixture
async def url(receiver: WebhookReceiver, sim: Simulator) -> AsyncIterator[str]:
    """Serve *receiver* on loopback and point *sim*'s callbacks at it."""
    async with receiver.serve() as served:
        sim.configure(webhook_url=served)
        yield served


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Yield a plain aiohttp session, standing in for Leonardo's callback sender."""
    async with aiohttp.ClientSession() as http:
        yield http


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes | dict[str, Any],
    *,
    key: str | None = KEY,
    scheme: str = "Bearer",
    data: Any = None,
) -> tuple[int, Any]:
    """POST a body (JSON-encoded if a dict) and return the status and parsed answer."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"{scheme} {key}"
    async with session.post(url, data=raw if data is None else data, headers=headers) as answer:
        text = await answer.text()
        return answer.status, json.loads(text) if text else None


async def submit(client: LeonardoClient, count: int) -> list[TrackedJob]:
    """Submit *count* video jobs from one frame, tracking each as soon as it is submitted.

    A callback that arrives before its job is tracked is ignored (polling would find the
    job later), and the key limiter paces submits, so each job is tracked at once.
    """
    image = await client.upload_image(PNG)
    handles = []
    for i in range(count):
        job = await client.image_to_video(prompt=f"shot {i}", image=image)
        handles.append(client.track(job.id))
    return handles


async def test_callbacks_resolve_jobs_without_polling(
    client: LeonardoClient, receiver: WebhookReceiver, url: str
) -> None:
    """Jobs on a 30 s poll schedule finish as soon as the simulator calls back, with no poll."""
    handles = await submit(client, 3)
    with anyio.fail_after(DEADLINE):
        done = [await handle for handle in handles]
    assert [g.status for g in done] == [GenerationStatus.COMPLETE] * 3
    assert all(g.video_url for g in done)
    tracker = client.tracker_statistics()
    assert (tracker.polls, tracker.listing_pages) == (0, 0)
    assert tracker.complete == 3
    stats = receiver.statistics()
    assert (stats.accepted, stats.resolved, dict(stats.rejected)) == (3, 3, {})


async def test_failed_callback_fails_the_handle(
    client: LeonardoClient, sim: Simulator, receiver: WebhookReceiver, url: str
) -> None:
    """A FAILED callback makes the handle raise GenerationFailedError, without a poll."""
    sim.configure(failure_rate=1.0)
    [handle] = await submit(client, 1)
    with anyio.fail_after(DEADLINE), pytest.raises(GenerationFailedError) as caught:
        await handle
    assert caught.value.generation.id == handle.generation_id
    assert client.tracker_statistics().polls == 0
    assert receiver.statistics().resolved == 1


async def test_posted_callback_resolves_a_tracked_job(
    client: LeonardoClient, url: str, session: aiohttp.ClientSession
) -> None:
    """A callback for a tracked id resolves its handle before the 200 answer is sent."""
    handle = client.track("gen-posted")
    status, answer = await post(session, url, callback("gen-posted", prompt="p", seed=7))
    assert (status, answer) == (200, {"resolved": True})
    assert handle.done()
    generation = handle.result()
    assert generation.video_url == "http://cdn.test/a.mp4"
    assert (generation.prompt, generation.seed) == ("p", 7)


#: Leonardo's documented ``image_generation.complete`` sample, ids shortened: ``seed`` and
#: ``apiDollarCost`` are strings, ``createdAt`` has no zone, and many fields are null.
DOCUMENTED_SAMPLE: dict[str, Any] = {
    "type": "image_generation.complete",
    "object": "generation",
    "timestamp": "2024-01-24T14:44:32.061Z",
    "api_version": "v1",
    "data": {
        "object": {
            "id": "gen-documented",
            "createdAt": "2024-01-24T14:44:19.093",
            "updatedAt": "2024-01-24T14:44:31.3",
            "userId": "user-1",
            "public": False,
            "flagged": False,
            "nsfw": False,
            "status": "COMPLETE",
            "coreModel": "SD",
            "guidanceScale": 7,
            "imageHeight": 512,
            "imageWidth": 512,
            "inferenceSteps": 15,
            "initGeneratorId": None,
            "initImageId": None,
            "initStrength": None,
            "modelId": "model-1",
            "negativePrompt": "",
            "prompt": "a cute cat",
            "quantity": 1,
            "sdVersion": "v1_5",
            "tokenCost": 0,
            "seed": "905778432",
            "scheduler": "EULER_DISCRETE",
            "presetStyle": None,
            "promptMagic": False,
            "api": True,
            "apiDollarCost": "0",
            "images": [
                {
                    "id": "img-documented",
                    "createdAt": "2024-01-24T14:44:31.97",
                    "url": "https://cdn.leonardo.ai/users/u/generations/g/image.jpg",
                    "generationId": "gen-documented",
                    "nsfw": False,
                    "likeCount": 0,
                    "public": False,
                }
            ],
        }
    },
}


async def test_the_documented_sample_is_accepted_and_read(
    client: LeonardoClient, receiver: WebhookReceiver, url: str, session: aiohttp.ClientSession
) -> None:
    """Leonardo's own sample (string seed, string apiDollarCost) is read, not refused; with
    a video URL in its image, as a video job's callback would carry, it resolves the job."""
    handle = client.track("gen-documented")
    status, answer = await post(session, url, DOCUMENTED_SAMPLE)
    assert (status, answer) == (200, {"resolved": False})  # an image job: no video URL
    assert receiver.statistics().accepted == 1
    video = copy.deepcopy(DOCUMENTED_SAMPLE)
    video["data"]["object"]["images"][0]["motionMP4URL"] = "https://cdn.leonardo.ai/v.mp4"
    status, answer = await post(session, url, video)
    assert (status, answer) == (200, {"resolved": True})
    generation = handle.result()
    assert generation.seed == 905778432
    assert (generation.width, generation.height) == (512, 512)  # imageWidth, imageHeight
    assert generation.created_at is not None
    assert generation.created_at.microsecond == 93000
    assert receiver.statistics().rejected == {}


@pytest.mark.parametrize(
    ("key", "scheme"),
    [
        ("wrong-key", "Bearer"),
        (None, "Bearer"),
        (KEY, "Basic"),
        ("", "Bearer"),
        (KEY + "x", "Bearer"),
    ],
    ids=["wrong", "missing", "other-scheme", "empty", "longer"],
)
async def test_bad_or_missing_key_is_401(
    client: LeonardoClient,
    receiver: WebhookReceiver,
    url: str,
    session: aiohttp.ClientSession,
    key: str | None,
    scheme: str,
) -> None:
    """A missing, wrong or non-Bearer callback key is refused with 401 and resolves nothing."""
    handle = client.track("gen-guarded")
    status, answer = await post(session, url, callback("gen-guarded"), key=key, scheme=scheme)
    assert status == 401
    assert "error" in answer
    assert not handle.done()
    assert receiver.statistics().rejected == {"unauthorized": 1}


async def test_bearer_scheme_is_case_insensitive(url: str, session: aiohttp.ClientSession) -> None:
    """``bearer <key>`` in lower case is accepted, as HTTP auth schemes are case-insensitive."""
    status, _ = await post(session, url, callback("gen-x"), scheme="bearer")
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"\xff\xfe\x00garbage", b"[" * 100_000],
    ids=["broken", "empty", "not-utf8", "deeply-nested"],
)
async def test_malformed_json_is_400(
    receiver: WebhookReceiver, url: str, session: aiohttp.ClientSession, body: bytes
) -> None:
    """A body that is not JSON gets 400 with a short JSON error."""
    status, answer = await post(session, url, body)
    assert status == 400
    assert set(answer) == {"error"}
    assert len(answer["error"]) <= 200
    assert receiver.statistics().rejected == {"malformed_json": 1}


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        "a string",
        {"data": {"object": {"id": "g", "status": "COMPLETE"}}},
        {"type": 7},
        {"type": EVENT},
        {"type": EVENT, "data": {}},
        {"type": EVENT, "data": {"object": {"status": "COMPLETE"}}},
        {"type": EVENT, "data": {"object": {"id": 12, "status": "COMPLETE"}}},
        {"type": EVENT, "data": {"object": {"id": "g", "images": []}}},
        {"type": EVENT, "data": {"object": {"id": "g", "status": ["COMPLETE"]}}},
    ],
    ids=[
        "list",
        "string",
        "no-type",
        "type-not-string",
        "no-data",
        "no-object",
        "no-id",
        "id-not-string",
        "no-status",
        "status-not-string",
    ],
)
async def test_wrong_shape_is_400(
    receiver: WebhookReceiver, url: str, session: aiohttp.ClientSession, body: Any
) -> None:
    """Valid JSON that is not a generation callback gets 400 naming the problem."""
    status, answer = await post(session, url, json.dumps(body).encode())
    assert status == 400
    assert answer["error"]
    assert receiver.statistics().rejected == {"bad_shape": 1}


async def test_wrong_shape_error_names_the_wire_path(
    url: str, session: aiohttp.ClientSession
) -> None:
    """The 400 error names the JSON path as the sender wrote it."""
    body = callback("g")
    body["data"]["object"]["id"] = 12
    status, answer = await post(session, url, body)
    assert status == 400
    assert "$.data.object.id" in answer["error"]


@pytest.mark.parametrize("images", [["x"], "x", [{"url": 5}], None])
async def test_odd_optional_fields_are_read_leniently(
    client: LeonardoClient,
    receiver: WebhookReceiver,
    url: str,
    session: aiohttp.ClientSession,
    images: Any,
) -> None:
    """A callback with an id and a status is accepted, whatever its optional fields hold."""
    handle = client.track("g")
    body = callback("g", status="FAILED", seed="not a number", createdAt=5)
    body["data"]["object"]["images"] = images
    status, answer = await post(session, url, body)
    assert (status, answer) == (200, {"resolved": True})
    with pytest.raises(GenerationFailedError) as failed:
        handle.result()
    assert (failed.value.generation.seed, failed.value.generation.created_at) == (None, None)
    assert receiver.statistics().rejected == {}


async def test_oversized_body_is_413(
    receiver: WebhookReceiver, url: str, session: aiohttp.ClientSession
) -> None:
    """A body over max_body, announced by Content-Length, gets 413."""
    status, _ = await post(session, url, b" " * (receiver.max_body + 1))
    assert status == 413
    assert receiver.statistics().rejected == {"too_large": 1}


async def test_oversized_chunked_body_is_413(
    receiver: WebhookReceiver, url: str, session: aiohttp.ClientSession
) -> None:
    """A chunked body with no Content-Length is cut off at max_body with 413."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(receiver.max_body // 4096 + 2):
            yield b" " * 4096

    try:
        status, _ = await post(session, url, b"", data=chunks())
    except aiohttp.ClientError:
        status = 413  # the server may close before the rest of the upload is sent
    assert status == 413
    assert receiver.statistics().rejected == {"too_large": 1}


async def test_body_at_the_limit_is_read(
    client: LeonardoClient, url: str, session: aiohttp.ClientSession
) -> None:
    """A callback padded to exactly max_body bytes is still accepted."""
    small = WebhookReceiver(client, callback_key=KEY, max_body=4096)
    async with small.serve() as small_url:
        body = json.dumps(callback("gen-pad")).encode()
        padded = body[:-1] + b" " * (4096 - len(body)) + b"}"
        assert len(padded) == 4096
        status, _ = await post(session, small_url, padded)
    assert status == 200


async def test_untracked_generation_is_200_and_ignored(
    client: LeonardoClient, receiver: WebhookReceiver, url: str, session: aiohttp.ClientSession
) -> None:
    """A callback for a generation nobody tracks is acknowledged with 200 and changes nothing."""
    status, answer = await post(session, url, callback("gen-nobody-tracks"))
    assert (status, answer) == (200, {"resolved": False})
    assert client.tracker_statistics().complete == 0
    stats = receiver.statistics()
    assert (stats.accepted, stats.resolved) == (1, 0)


async def test_unknown_event_type_is_202_and_ignored(
    client: LeonardoClient, receiver: WebhookReceiver, url: str, session: aiohttp.ClientSession
) -> None:
    """An event type the receiver does not handle is acknowledged with 202, whatever its data."""
    handle = client.track("gen-other")
    body = {**callback("gen-other"), "type": "model_training.complete"}
    status, _ = await post(session, url, body)
    assert status == 202
    assert not handle.done()
    stats = receiver.statistics()
    assert (stats.ignored, stats.accepted) == (1, 0)


async def test_configured_event_type_is_handled(
    client: LeonardoClient, session: aiohttp.ClientSession
) -> None:
    """An extra event type passed to the receiver resolves jobs like the documented one."""
    receiver = WebhookReceiver(
        client, callback_key=KEY, event_types={EVENT, "video_generation.complete"}
    )
    handle = client.track("gen-video")
    async with receiver.serve() as url:
        body = {**callback("gen-video"), "type": "video_generation.complete"}
        status, _ = await post(session, url, body)
    assert status == 200
    assert handle.done()


async def test_pending_or_urlless_callback_does_not_resolve(
    client: LeonardoClient, url: str, session: aiohttp.ClientSession
) -> None:
    """PENDING news, or COMPLETE without a video URL, leaves the job to the tracker's rules."""
    handle = client.track("gen-early")
    assert (await post(session, url, callback("gen-early", "PENDING")))[1] == {"resolved": False}
    urlless = callback("gen-early")
    urlless["data"]["object"]["images"] = [{"id": "img-1", "url": "http://cdn.test/a.jpg"}]
    assert (await post(session, url, urlless))[1] == {"resolved": False}
    assert not handle.done()


async def test_handler_mounts_on_the_users_app(
    client: LeonardoClient, session: aiohttp.ClientSession
) -> None:
    """``receiver.handler`` works on an application the user runs themselves."""
    receiver = WebhookReceiver(client, callback_key=KEY)
    app = web.Application()
    app.router.add_post("/leonardo/webhook", receiver.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        handle = client.track("gen-mounted")
        status, _ = await post(
            session, f"http://127.0.0.1:{port}/leonardo/webhook", callback("gen-mounted")
        )
    finally:
        await runner.cleanup()
    assert status == 200
    assert handle.done()


async def test_no_callback_key_accepts_and_warns(
    client: LeonardoClient, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """With callback_key=None any request is accepted, and a warning says so once."""
    with caplog.at_level(logging.WARNING, logger="leonardo_async"):
        receiver = WebhookReceiver(client, callback_key=None)
    assert len([r for r in caplog.records if "no callback key" in r.getMessage()]) == 1
    handle = client.track("gen-open")
    async with receiver.serve() as url:
        status, _ = await post(session, url, callback("gen-open"), key=None)
    assert status == 200
    assert handle.done()


async def test_failing_progress_callback_is_not_a_500(
    client: LeonardoClient, url: str, session: aiohttp.ClientSession
) -> None:
    """An application's progress callback that raises is logged; the callback still gets 200."""

    def broken(_: object) -> None:
        raise RuntimeError("progress bar crashed")

    client.on_progress = broken
    handle = client.track("gen-progress")
    status, _ = await post(session, url, callback("gen-progress"))
    assert status == 200
    assert handle.done()


async def test_statistics_count_each_outcome(
    client: LeonardoClient, receiver: WebhookReceiver, url: str, session: aiohttp.ClientSession
) -> None:
    """statistics() is a frozen snapshot counting accepted, ignored, resolved and rejections."""
    client.track("gen-stats")
    await post(session, url, callback("gen-stats"))
    await post(session, url, callback("gen-untracked"))
    await post(session, url, {**callback("g"), "type": "other"})
    await post(session, url, callback("g"), key="nope")
    await post(session, url, b"{")
    await post(session, url, b"{}")
    snapshot = receiver.statistics()
    assert snapshot == WebhookStatistics(
        accepted=2,
        ignored=1,
        resolved=1,
        rejected={"unauthorized": 1, "malformed_json": 1, "bad_shape": 1},
    )
    await post(session, url, b"{")
    assert snapshot.rejected["malformed_json"] == 1
    with pytest.raises(TypeError):
        snapshot.rejected["malformed_json"] = 5  # type: ignore[index]


async def test_receiver_repr_hides_the_key(client: LeonardoClient) -> None:
    """Neither repr nor statistics of a receiver show the callback key."""
    receiver = WebhookReceiver(client, callback_key=KEY)
    assert KEY not in repr(receiver)
    assert KEY not in repr(receiver.statistics())


@pytest.mark.parametrize(
    "kwargs",
    [{"callback_key": ""}, {"callback_key": KEY, "max_body": 0}],
    ids=["empty-key", "no-body"],
)
async def test_bad_settings_are_refused(client: LeonardoClient, kwargs: dict[str, Any]) -> None:
    """An empty callback key or a non-positive max_body is a ValidationError."""
    with pytest.raises(ValidationError):
        WebhookReceiver(client, **kwargs)


# --- property: nothing a caller sends produces a 5xx -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.sampled_from(["gen-prop", "gen-other"]) | st.text(max_size=8)
statuses = st.sampled_from(["COMPLETE", "FAILED", "PENDING", "NEW"])
stamps = st.sampled_from(["2026-11-25T14:07:30.123", "2026-11-25T14:07:30Z", "2026-13-99"])
#: Well-formed callbacks (any status, optional fields present or not, unknown keys added).
valid_callbacks = st.fixed_dictionaries(
    {
        "type": st.just(EVENT),
        "data": st.fixed_dictionaries(
            {
                "object": st.fixed_dictionaries(
                    {"id": ids, "status": statuses},
                    optional={
                        "images": st.lists(
                            st.fixed_dictionaries(
                                {"id": st.text(max_size=8)},
                                optional={
                                    "url": st.none() | st.text(max_size=8),
                                    "motionMP4URL": st.none() | st.text(max_size=8),
                                    "nsfw": st.none() | st.booleans(),
                                    "likeCount": json_values,
                                },
                            ),
                            max_size=3,
                        ),
                        "createdAt": st.none() | stamps,
                        "seed": st.none() | st.integers(),
                        "prompt": st.none() | st.text(max_size=8),
                        "userId": json_values,
                    },
                )
            }
        ),
    },
    optional={"object": json_values, "timestamp": json_values, "api_version": json_values},
)
#: Callback-like bodies where any field may be missing or of any type.
loose_callbacks = st.fixed_dictionaries(
    {},
    optional={
        "type": st.just(EVENT) | json_values,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "object": st.fixed_dictionaries(
                    {},
                    optional={
                        "id": ids | json_values,
                        "status": statuses | json_values,
                        "images": st.lists(json_values, max_size=3) | json_values,
                        "createdAt": stamps | json_values,
                        "seed": json_values,
                    },
                )
                | json_values
            },
        )
        | json_values,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=valid_callbacks | loose_callbacks | json_values)
async def test_arbitrary_json_never_gets_a_5xx(
    client: LeonardoClient, url: str, session: aiohttp.ClientSession, body: Any
) -> None:
    """Whatever JSON an authenticated caller sends, the answer is 200, 202 or 400, never 5xx."""
    client.track("gen-prop")
    status, answer = await post(session, url, json.dumps(body).encode())
    assert status in (200, 202, 400)
    assert isinstance(answer, dict)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.binary(max_size=512))
async def test_arbitrary_bytes_never_get_a_5xx(
    url: str, session: aiohttp.ClientSession, body: bytes
) -> None:
    """Arbitrary bytes as a body are answered 200, 202 or 400, never 5xx."""
    status, _ = await post(session, url, body)
    assert status in (200, 202, 400)
