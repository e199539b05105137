"""HTTP behaviour against the simulator: auth, retries, 429 pauses, timeouts, error mapping."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _helpers import (
    DEADLINE,
    KEY,
    QUICK_RETRY,
    Traffic,
    make_client,
    raises_clean,
    reconfigure,
    requests_to,
    route,
)
from _images import png_bytes

from leonardo_async import (
    APIError,
    AuthenticationError,
    LeonardoClient,
    NotFoundError,
    RateLimitError,
    ResponseShapeError,
    RetryPolicy,
    ServerError,
    Timeouts,
    TransportError,
)
from leonardo_async.simulator import Simulator
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

ME = "GET /me"


async def test_wrong_key_is_an_authentication_error(sim: Simulator) -> None:
    """A 401 for a wrong key raises AuthenticationError at once, naming neither key."""
    sim.configure(auth_hook_errors=False)
    async with make_client(sim, api_key="sk-wrong-key-123") as client:
        with raises_clean(AuthenticationError) as info:
            await client.me()
    assert info.value.status == 401
    assert info.value.code == "access-denied"
    assert "sk-wrong-key-123" not in str(info.value)
    assert requests_to(sim, ME) == 1


@pytest.mark.parametrize(
    ("key", "status"),
    [("sk-malformed-key-123", 500), ("0b6c8a9e-3f1d-4c2b-8e7a-5d4f3c2b1a09", 401)],
)
async def test_a_refused_key_fails_at_once_even_on_a_submit(
    sim: Simulator, key: str, status: int
) -> None:
    """Hook 500 or access-denied: AuthenticationError after one request, never uncertain."""
    async with make_client(sim, api_key=key) as client:
        with raises_clean(AuthenticationError, match="LEONARDO_API_KEY") as info:
            await client.image_to_video(prompt="waves", image="an-image-id")
        with raises_clean(AuthenticationError, match="LEONARDO_API_KEY"):
            await client.me()
    assert info.value.status == status
    assert key not in str(info.value)
    assert requests_to(sim, "POST /generations-image-to-video") == 1
    assert requests_to(sim, ME) == 1
    assert sim.statistics().generations_created == 0


@pytest.mark.parametrize(
    ("status", "body", "refused"),
    [
        (500, {"error": "Invalid response from authorization hook", "code": "unexpected"}, True),
        (400, {"error": "denied", "path": "$", "code": "access-denied"}, True),
        (401, None, True),
        (403, "<html>forbidden</html>", True),
        (500, {"error": "internal error", "code": "unexpected"}, False),
        (400, {"error": "Unexpected variable foo", "code": "validation-failed"}, False),
    ],
)
def test_which_answers_refuse_the_key(status: int, body: Any, refused: bool) -> None:
    """Hasura's key refusals are AuthenticationErrors whatever their status; others are not."""
    error = APIError.from_status(status, "GET", "https://x/me", body)
    assert isinstance(error, AuthenticationError) is refused
    assert ("LEONARDO_API_KEY" in str(error)) is refused


async def test_an_echoed_key_is_blanked_out_of_every_error(
    sim: Simulator, key_catcher: Any
) -> None:
    """A gateway that repeats the authorization header: the key reaches no error or log."""
    sim.configure(
        api_subscription_tokens=0,
        faults={"echo_authorization": True, "server_error_rate": 1.0, "routes": [ME]},
    )
    async with make_client(sim) as client:
        with raises_clean(ServerError, match=r"\[redacted\]") as info:
            await client.me()
        assert "Bearer [redacted]" in str(info.value.error)
        image = await client.upload_image(png_bytes())
        with raises_clean(APIError, match="not enough API credits") as refused:
            await client.image_to_video(prompt="waves", image=image)
    assert refused.value.status == 402
    assert "[redacted]" in str(refused.value)


async def test_auth_header_only_to_the_api_host(
    client: LeonardoClient, sim: Simulator, traffic: Traffic
) -> None:
    """API calls carry the key; uploads to the storage host never do."""
    await client.upload_image(png_bytes())
    await client.me()
    api = [e for e in traffic.exchanges if e.url.startswith(sim.base_url)]
    storage = [e for e in traffic.exchanges if e.url.startswith(sim.storage_url)]
    assert api
    assert storage
    assert all(e.headers.get("authorization") == f"Bearer {KEY}" for e in api)
    assert all("authorization" not in e.headers for e in storage)
    assert sim.statistics().storage_auth_headers == 0


async def test_server_error_on_get_is_retried(
    client: LeonardoClient, sim: Simulator, traffic: Traffic
) -> None:
    """A 5xx on a GET is retried, and the caller sees only the success."""
    sim.configure(faults={"server_error_rate": 1.0, "routes": [ME]})
    traffic.after(route("/me"), reconfigure(sim, faults={"server_error_rate": 0.0}))
    account = await client.me()
    assert account.user_id == sim.user_id
    assert [e.status for e in traffic.to("/me")][-1] == 200
    assert requests_to(sim, ME) == 2


async def test_server_errors_exhaust_retries(client: LeonardoClient, sim: Simulator) -> None:
    """Persistent 5xx ends in ServerError after the policy's attempts."""
    sim.configure(faults={"server_error_rate": 1.0, "routes": [ME]})
    with anyio.fail_after(DEADLINE), raises_clean(ServerError) as info:
        await client.me()
    assert info.value.status in (500, 502, 503)
    assert requests_to(sim, ME) == QUICK_RETRY.attempts


async def test_bad_json_on_get_is_retried(
    client: LeonardoClient, sim: Simulator, traffic: Traffic
) -> None:
    """A 200 whose body is not JSON is retried for a safe request."""
    sim.configure(faults={"malformed_json_rate": 1.0, "routes": [ME]})
    traffic.after(route("/me"), reconfigure(sim, faults={"malformed_json_rate": 0.0}))
    assert (await client.me()).user_id == sim.user_id
    assert requests_to(sim, ME) == 2


async def test_unexpected_shape_is_reported(client: LeonardoClient, sim: Simulator) -> None:
    """Well-formed JSON of the wrong shape raises ResponseShapeError naming the path."""
    sim.configure(faults={"unexpected_shape_rate": 1.0, "routes": [ME]})
    with raises_clean(ResponseShapeError, match=r"@ \$"):
        await client.me()


@pytest.mark.parametrize("style", ["seconds", "http-date"])
async def test_retry_after_is_honoured(sim: Simulator, style: str) -> None:
    """After a 429 with Retry-After, the next request waits at least that long."""
    sim.configure(
        retry_after_style=style,
        faults={"rate_limit_storm_rate": 1.0, "rate_limit_storm_length": 1, "routes": [ME]},
    )
    traffic = Traffic()
    traffic.after(route("/me", status=429), reconfigure(sim, faults={"rate_limit_storm_rate": 0.0}))
    async with make_client(sim, traffic) as client:
        with anyio.fail_after(DEADLINE):
            assert (await client.me()).user_id == sim.user_id
        assert client.statistics().rate_limited == 1
    refused, accepted = traffic.to("/me")
    assert (refused.status, accepted.status) == (429, 200)
    assert refused.answered_at is not None
    # The simulator asks for at least one whole second: never come back sooner.
    assert accepted.sent_at - refused.answered_at >= 0.9


async def test_429_without_retry_after_backs_off(sim: Simulator) -> None:
    """A 429 without Retry-After is retried after a backoff pause, and succeeds."""
    sim.configure(
        retry_after_style="none",
        faults={"rate_limit_storm_rate": 1.0, "rate_limit_storm_length": 1},
    )
    traffic = Traffic()
    traffic.after(route("/me", status=429), reconfigure(sim, faults={"rate_limit_storm_rate": 0.0}))
    async with make_client(sim, traffic) as client:
        with anyio.fail_after(DEADLINE):
            await client.me()
        assert client.statistics().rate_limited == 1
        assert client.statistics().request_wait > 0
    assert [e.status for e in traffic.to("/me")] == [429, 200]


async def test_persistent_429_raises_rate_limit_error(sim: Simulator) -> None:
    """When retries run out on 429s, RateLimitError carries the server's Retry-After."""
    sim.configure(
        faults={"rate_limit_storm_rate": 1.0, "routes": [ME]}, retry_after_style="seconds"
    )
    async with make_client(sim, retry=RetryPolicy(attempts=1)) as client:
        with raises_clean(RateLimitError) as info:
            await client.me()
    assert info.value.status == 429
    assert info.value.retry_after == 1.0


async def test_unknown_route_is_not_found(sim: Simulator) -> None:
    """A 404 from the API raises NotFoundError and is not retried."""
    async with make_client(sim, base_url=sim.base_url + "/nowhere") as client:
        with raises_clean(NotFoundError):
            await client.me()
    assert sim.statistics().requests.get("(unmatched)") == 1


async def test_connection_refused_is_a_transport_error(
    leonardo_simulator_factory: SimulatorFactory,
) -> None:
    """Nothing listening: the request is retried, then TransportError is raised."""
    async with leonardo_simulator_factory() as stopped:
        base_url = stopped.base_url
    async with LeonardoClient(KEY, base_url=base_url, retry=QUICK_RETRY) as client:
        with anyio.fail_after(DEADLINE), raises_clean(TransportError) as info:
            await client.me()
    assert "/me" in info.value.url


@pytest.mark.parametrize("own_session", [True, False])
async def test_api_timeout_applies(sim: Simulator, own_session: bool) -> None:
    """A stalled API call ends after Timeouts.api, with the client's own session or a given one."""
    sim.configure(faults={"slow_rate": 1.0, "slow_seconds": 60.0, "routes": [ME]})
    options: dict[str, Any] = {
        "retry": RetryPolicy(attempts=1),
        "timeouts": Timeouts(api=0.3, connect=5.0),
    }
    with anyio.fail_after(DEADLINE):
        if own_session:
            async with make_client(sim, **options) as client:
                with raises_clean(TransportError):
                    await client.me()
        else:
            async with make_client(sim, Traffic(), **options) as client:
                with raises_clean(TransportError):
                    await client.me()
