"""The API key stays secret: not in reprs, errors, logs, or requests to other hosts."""

from __future__ import annotations

import pickle
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _helpers import (
    DEADLINE,
    KEY,
    KeyCatcher,
    Traffic,
    assert_no_key,
    make_client,
)
from _images import png_bytes

from leonardo_async import (
    APIError,
    AuthenticationError,
    DownloadError,
    FrameRef,
    Generation,
    GenerationFailedError,
    GenerationStatus,
    GenerationVanishedError,
    LeonardoClient,
    LeonardoError,
    NotFoundError,
    RateLimitError,
    ResponseShapeError,
    RetryPolicy,
    ServerError,
    SubmitUncertainError,
    TrackerClosedError,
    TransportError,
    UploadError,
    ValidationError,
    WaitTimeoutError,
)
from leonardo_async.simulator import JobDurations, Simulator
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

ONE_TRY = RetryPolicy(attempts=1, base_delay=0.01, max_delay=0.05)


async def test_key_not_in_reprs(client: LeonardoClient) -> None:
    """Neither the client nor anything it exposes shows the key in its str or repr."""
    [handle_id] = [(await client.image_to_video(prompt="p", image=png_bytes())).id]
    handle = client.track(handle_id)
    for thing in (
        client,
        client.statistics(),
        client.limits,
        client.poll_schedule,
        handle,
        client.tracker_statistics(),
        await client.me(),
    ):
        assert_no_key(thing)
    for value in vars(client).values():
        if not isinstance(value, dict):
            assert_no_key(value)


async def _wrong_key(start: SimulatorFactory) -> LeonardoError:
    """The simulator accepts another key, so ours is the one refused."""
    async with start(api_key="sk-the-right-one") as sim:
        async with make_client(sim) as client:
            with pytest.raises(AuthenticationError) as info:
                await client.me()
        return info.value


async def _faulty(
    start: SimulatorFactory,
    faults: dict[str, Any],
    action: Callable[[LeonardoClient], Awaitable[Any]],
    **changes: Any,
) -> LeonardoError:
    async with start(faults=faults, **changes) as sim:
        async with make_client(sim, retry=ONE_TRY) as client:
            with pytest.raises(LeonardoError) as info:
                await action(client)
        return info.value


async def _me(client: LeonardoClient) -> Any:
    return await client.me()


async def _submit(client: LeonardoClient) -> Any:
    return await client.image_to_video(prompt="p", image=png_bytes())


async def _wait(client: LeonardoClient) -> Any:
    job = await client.image_to_video(prompt="p", image=png_bytes())
    return await client.wait(job.id, timeout=DEADLINE)


async def _short_wait(client: LeonardoClient) -> Any:
    job = await client.image_to_video(prompt="p", image=png_bytes())
    return await client.wait(job.id, timeout=0.1)


async def _vanish(client: LeonardoClient) -> Any:
    client.vanish_grace = 0.1
    job = await client.image_to_video(prompt="p", image=png_bytes())
    await client.delete_generation(job.id)
    return await client.wait(job.id)


async def _download(client: LeonardoClient, tmp: Path) -> Any:
    return await client.download(await _wait_ok(client), tmp / "v.mp4")


async def _wait_ok(client: LeonardoClient) -> Generation:
    job = await client.image_to_video(prompt="p", image=png_bytes())
    return await client.wait(job.id, timeout=DEADLINE)


async def _closed(start: SimulatorFactory, sim_changes: dict[str, Any]) -> LeonardoError:
    async with start(**sim_changes) as sim:
        async with make_client(sim) as client:
            job = await client.image_to_video(prompt="p", image=png_bytes())
            handle = client.track(job.id)
        with pytest.raises(TrackerClosedError) as info:
            await handle
        return info.value


async def _refused(start: SimulatorFactory) -> LeonardoError:
    async with start() as sim:
        base_url = sim.base_url
    async with LeonardoClient(KEY, base_url=base_url, retry=ONE_TRY) as client:
        with pytest.raises(TransportError) as info:
            await client.me()
    return info.value


async def test_key_not_in_any_error(
    leonardo_simulator_factory: SimulatorFactory,
    tmp_path: Path,
    key_catcher: KeyCatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every kind of error the client raises is free of the key, and so are DEBUG logs."""
    start = leonardo_simulator_factory  # a simulator of its own for each kind of error
    submit_only = {"routes": ["POST /generations-image-to-video"]}
    long_jobs = {"durations": JobDurations.fixed(600)}
    with anyio.fail_after(DEADLINE * 3):
        errors: list[LeonardoError] = [
            await _wrong_key(start),
            await _faulty(start, {"server_error_rate": 1.0, "routes": ["GET /me"]}, _me),
            await _faulty(start, {"rate_limit_storm_rate": 1.0, "routes": ["GET /me"]}, _me),
            await _faulty(start, {"unexpected_shape_rate": 1.0, "routes": ["GET /me"]}, _me),
            await _faulty(start, {"server_error_rate": 1.0, **submit_only}, _submit),
            await _faulty(start, {"reset_before_rate": 1.0, **submit_only}, _submit),
            await _faulty(start, {}, _submit, upload_url_ttl=0.0),
            await _faulty(start, {}, _wait, failure_rate=1.0),
            await _faulty(start, {}, _short_wait, **long_jobs),
            await _faulty(start, {}, _vanish),
            await _faulty(start, {"cdn_truncate_rate": 1.0}, lambda c: _download(c, tmp_path)),
            await _closed(start, long_jobs),
            await _refused(start),
        ]
        async with start() as sim:
            async with make_client(sim, base_url=sim.base_url + "/x") as client:
                with pytest.raises(NotFoundError) as not_found:
                    await client.me()
            async with make_client(sim) as client:
                with pytest.raises(ValidationError) as invalid:
                    await client.image_to_video(prompt="p", image=FrameRef("i"), duration=5)
    errors += [not_found.value, invalid.value]
    kinds = {type(e) for e in errors}
    assert {
        AuthenticationError,
        ServerError,
        RateLimitError,
        ResponseShapeError,
        SubmitUncertainError,
        UploadError,
        GenerationFailedError,
        WaitTimeoutError,
        GenerationVanishedError,
        DownloadError,
        TrackerClosedError,
        TransportError,
        NotFoundError,
        ValidationError,
    } <= kinds
    for error in errors:
        assert_no_key(error)
    assert key_catcher.records  # DEBUG logging was on and did record things
    assert not key_catcher.leaks()


async def test_authorization_never_sent_to_storage(sim: Simulator, tmp_path: Path) -> None:
    """Uploads and downloads go to the storage host with no authorization header."""
    traffic = Traffic()
    async with make_client(sim, traffic) as client:
        with anyio.fail_after(DEADLINE):
            end = await client.upload_image(png_bytes())
            job = await client.image_to_video(prompt="p", image=png_bytes(), end_image=end)
            video = await client.wait(job.id)
            await client.download(video, tmp_path / "v.mp4")
        storage = [e for e in traffic.exchanges if e.url.startswith(sim.storage_url)]
        assert {e.method for e in storage} == {"POST", "GET"}
        assert all("authorization" not in e.headers for e in storage)
        assert sim.statistics().storage_auth_headers == 0
        assert all(KEY not in str(e.headers) for e in storage)


def test_errors_pickle_and_keep_their_data() -> None:
    """Errors hold parsed data, so they survive pickling (to log or hand to another process)."""
    generation = Generation("g", GenerationStatus.FAILED)
    errors: list[LeonardoError] = [
        ValidationError("duration", 5, "one of 4, 6, 8"),
        TransportError("GET", "http://h/x", "reset"),
        SubmitUncertainError("POST", "http://h/s", "reset"),
        ResponseShapeError("http://h/g", ["expected a string @ $.id"]),
        APIError.from_status(500, "GET", "http://h/g", {"error": "internal", "code": "unexpected"}),
        APIError.from_status(429, "GET", "http://h/g", None, retry_after=3.0),
        APIError.from_status(401, "GET", "http://h/me", {"error": "bad key"}),
        UploadError("upload failed"),
        DownloadError("download failed"),
        GenerationFailedError(generation),
        GenerationVanishedError("g"),
        TrackerClosedError("g"),
        WaitTimeoutError("g", 2.0),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)
