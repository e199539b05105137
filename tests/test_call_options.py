"""Per-call options (``timeout=``, ``extra_headers=``, ``max_retries=``): checked before
anything is sent, applied to the call's own requests, never a way around the key.

Unit tests over the in-memory transport (what each request carried), then loopback
tests against the simulator (which hosts see the headers; a submit never paid twice).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import pytest
from _helpers import DEADLINE, KEY, Traffic, assert_no_key, make_client, raises_clean
from hypothesis import given
from hypothesis import strategies as st
from test_mock_transport import BASE, FakeAPI, client_on

from leonardo_async import (
    CallOptions,
    FrameRef,
    ImageToVideoRequest,
    Request,
    Response,
    ServerError,
    SubmitUncertainError,
    ValidationError,
    VideoSpec,
)
from leonardo_async.simulator import Simulator

SUBMIT = "POST /generations-image-to-video"


async def test_extra_headers_and_timeout_reach_the_calls_requests_only() -> None:
    """The call's headers and timeout are on its requests; the next call has neither,
    and the key's authorization is the client's."""
    api = FakeAPI()
    async with client_on(api.handle) as client:
        await client.me(timeout=2.5, extra_headers={"X-Trace": "t-1", "User-Agent": "mine"})
        await client.get_generation("gen-404")
    first, second = api.requests
    assert first.headers["x-trace"] == "t-1"
    assert first.headers["user-agent"] == "mine"
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert [n for n in first.headers if n.lower() == "user-agent"] == ["user-agent"]
    assert first.timeout == 2.5
    assert first.connect_timeout <= 2.5
    assert "x-trace" not in second.headers
    assert second.timeout == client.timeouts.api


async def test_a_submit_carries_the_calls_headers_and_preview_shows_them() -> None:
    """image_to_video sends its headers with the submit; preview_submit shows the same
    request with the key redacted."""
    api = FakeAPI()
    request = ImageToVideoRequest.of(VideoSpec(prompt="a cat", seed=3), FrameRef("img-1"))
    async with client_on(api.handle) as client:
        shown = client.preview_submit(request, extra_headers={"X-Trace": "t-2"})
        await client.submit(request, extra_headers={"X-Trace": "t-2"}, timeout=9.0)
    (sent,) = [r for r in api.requests if r.method == "POST"]
    assert sent.headers["x-trace"] == "t-2"
    assert sent.timeout == 9.0
    assert shown.headers["x-trace"] == "t-2"
    assert shown.headers["authorization"] == "Bearer [redacted]"
    assert shown.json == sent.json
    assert shown.url == sent.url


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
async def test_authorization_is_refused_never_obeyed(name: str) -> None:
    """A header naming authorization, in any case, is a ValidationError naming it, its
    value never shown, and nothing is sent."""
    api = FakeAPI()
    async with client_on(api.handle) as client:
        with raises_clean(ValidationError, match=r"extra_headers\[") as info:
            await client.me(extra_headers={name: "Bearer sk-other-SECRET"})
    assert "sk-other-SECRET" not in str(info.value)
    assert "api_key=" in str(info.value)
    assert api.requests == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"extra_headers": {"x trace": "1"}}, "extra_headers"),
        ({"extra_headers": {"X-Trace": "a\r\nX-Evil: 1"}}, "extra_headers['X-Trace']"),
        ({"extra_headers": {"Host": "evil.test"}}, "extra_headers['Host']"),
        ({"extra_headers": {"Content-Length": "1"}}, "extra_headers['Content-Length']"),
        ({"extra_headers": ["X-Trace"]}, "extra_headers"),
    ],
)
async def test_bad_options_fail_before_any_request(options: dict[str, Any], field: str) -> None:
    """Each bad option names its field, on every method that takes it, sending nothing."""
    api = FakeAPI()
    request = ImageToVideoRequest.of(VideoSpec(prompt="a cat"), FrameRef("img-1"))
    async with client_on(api.handle) as client:
        for call in (
            lambda: client.me(**options),
            lambda: client.get_generation("g", **options),
            lambda: client.submit(request, **options),
            lambda: client.image_to_video(prompt="a cat", image="img-1", **options),
        ):
            with raises_clean(ValidationError) as info:
                await call()
            assert info.value.field == field
    assert api.requests == []


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.text(max_size=20),
        max_size=3,
    )
)
def test_headers_are_accepted_only_as_one_line_tokens(headers: dict[str, str]) -> None:
    """Any header mapping is either refused with a ValidationError or holds names that are
    tokens other than the reserved ones and values without line breaks."""
    try:
        options = CallOptions(extra_headers=headers)
    except ValidationError as exc:
        refused: ValidationError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.field.startswith("extra_headers")
        return
    for name, value in options.extra_headers.items():
        assert name.lower() not in {"authorization", "host", "content-length"}
        assert all(c.isalnum() or c in "!#$%&'*+.^_`|~-" for c in name)
        assert "\n" not in value
        assert "\r" not in value


@pytest.mark.parametrize(("max_retries", "sent"), [(0, 1), (2, 3), (None, 4)])
async def test_max_retries_sets_the_attempts_of_a_safe_request(
    max_retries: int | None, sent: int
) -> None:
    """A GET answered 503 is tried max_retries + 1 times (the client's 4 without it)."""
    requests: list[Request] = []

    def handler(request: Request) -> Response:
        requests.append(request)
        return Response.json(503, {"error": "busy"})

    async with client_on(handler) as client:
        with raises_clean(ServerError):
            await client.get_generation("g", max_retries=max_retries)
    assert len(requests) == sent
    assert all(r.url == f"{BASE}/generations/g" for r in requests)


async def test_max_retries_caps_the_download_attempts(tmp_path: Path) -> None:
    """A download the CDN keeps cutting short is tried max_retries + 1 times."""
    api = FakeAPI(looks=1)
    cuts: list[Request] = []

    def handler(request: Request) -> Response:
        if request.url.endswith(".mp4"):
            cuts.append(request)
            return Response(200, {"content-length": "999"}, b"short")
        return api.handle(request)

    async with client_on(handler) as client:
        job = await client.image_to_video(prompt="a cat", image="img-1")
        video = await client.wait(job.id, timeout=DEADLINE)
        with pytest.raises(Exception, match="download"):
            await client.download(video, tmp_path / "v.mp4", max_retries=1, timeout=5.0)
    assert len(cuts) == 2
    assert all(r.timeout == 5.0 for r in cuts)
    assert not (tmp_path / "v.mp4").exists()


# --- over loopback HTTP, against the simulator ------------------------------------------


async def test_extra_headers_never_leave_the_api_host(
    sim: Simulator, traffic: Traffic, tmp_path: Path
) -> None:
    """generate's headers go with the API requests of its uploads and submit, never to
    the storage host or the CDN."""
    frame = tmp_path / "start.png"
    frame.write_bytes((Path(__file__).parents[1] / "examples" / "start-frame.png").read_bytes())
    async with make_client(sim, traffic) as client:
        with anyio.fail_after(DEADLINE):
            video = await client.generate(
                prompt="a cat",
                image=frame,
                out=tmp_path / "v.mp4",
                extra_headers={"X-Trace": "t-3"},
                max_retries=2,
            )
    assert video.path.read_bytes() == sim.video_bytes(video.id)
    api = [e for e in traffic.exchanges if e.url.startswith(sim.base_url)]
    elsewhere = [e for e in traffic.exchanges if not e.url.startswith(sim.base_url)]
    assert elsewhere  # the upload's storage POST and the CDN's GET
    traced = [e for e in api if e.headers.get("x-trace") == "t-3"]
    assert {(e.method, e.url.removeprefix(sim.base_url)) for e in traced} >= {
        ("POST", "/init-image"),
        ("POST", "/generations-image-to-video"),
    }
    assert all("x-trace" not in {k.lower() for k in e.headers} for e in elsewhere)
    assert_no_key([e.headers for e in elsewhere])


async def test_max_retries_never_resends_a_submit_blindly(sim: Simulator, traffic: Traffic) -> None:
    """A submit answered 5xx with max_retries=10 is resent only after the listing showed
    no such job, as without it: the money rule outranks the option."""
    async with make_client(sim, traffic, listing_shows_videos=True) as client:
        image = (
            await client.upload_image(Path(__file__).parents[1] / "examples" / "start-frame.png")
        ).id
        sim.configure(faults={"server_error_rate": 1.0, "routes": [SUBMIT]})
        with anyio.fail_after(DEADLINE), raises_clean(SubmitUncertainError):
            await client.image_to_video(prompt="always 5xx", image=FrameRef(image), max_retries=10)
    submits = traffic.to("/generations-image-to-video", "POST")
    assert 1 <= len(submits) <= 3  # one send per listing search, as the submit rule says
    for before, after in itertools.pairwise(submits):
        assert any(
            before.sent_at < e.sent_at < after.sent_at for e in traffic.to("/generations/user/")
        ), "a submit was resent without looking for the first one"
    assert sim.statistics().generations_created == 0


async def test_the_blocking_client_takes_the_same_options(sim: Simulator) -> None:
    """The blocking client's methods take the per-call options too, checked the same."""
    from leonardo_async.sync import LeonardoClient as Blocking

    def work() -> int:
        with Blocking(KEY, base_url=sim.base_url) as client:
            with pytest.raises(ValidationError, match="authorization"):
                client.me(extra_headers={"authorization": "x"})
            account = client.me(extra_headers={"X-Trace": "t-4"}, timeout=10.0, max_retries=0)
            assert account.user_id
            return client.statistics().requests_sent

    with anyio.fail_after(DEADLINE):
        assert await anyio.to_thread.run_sync(work) == 1
