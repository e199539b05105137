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
    sim_config,
)
from _images import png_bytes

from leonardo_async import (
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

ME = "GET /me"


async def test_wrong_key_is_an_authentication_error(simulator: Simulator) -> None:
    """A 401 for a wrong key raises AuthenticationError at once, naming neither key."""
    async with make_client(simulator, api_key="sk-wrong-key-123") as client:
        with raises_clean(AuthenticationError) as info:
            await client.me()
    assert info.value.status == 401
    assert info.value.code == "access-denied"
    assert "sk-wrong-key-123" not in str(info.value)
    assert requests_to(simulator, ME) == 1


async def test_auth_header_only_to_the_api_host(
    client: LeonardoClient, simulator: Simulator, traffic: Traffic
) -> None:
    """API calls carry the key; uploads to the storage host never do."""
    await client.upload_image(png_bytes())
    await client.me()
    api = [e for e in traffic.exchanges if e.url.startswith(simulator.base_url)]
    storage = [e for e in traffic.exchanges if e.url.startswith(simulator.storage_url)]
    assert api
    assert storage
    assert all(e.headers.get("authorization") == f"Bearer {KEY}" for e in api)
    assert all("authorization" not in e.headers for e in storage)
    assert simulator.statistics().storage_auth_headers == 0


async def test_server_error_on_get_is_retried(
    client: LeonardoClient, simulator: Simulator, traffic: Traffic
) -> None:
    """A 5xx on a GET is retried, and the caller sees only the success."""
    simulator.configure(faults={"server_error_rate": 1.0, "routes": [ME]})
    traffic.after(route("/me"), reconfigure(simulator, faults={"server_error_rate": 0.0}))
    account = await client.me()
    assert account.user_id == simulator.user_id
    assert [e.status for e in traffic.to("/me")][-1] == 200
    assert requests_to(simulator, ME) == 2


async def test_server_errors_exhaust_retries(client: LeonardoClient, simulator: Simulator) -> None:
    """Persistent 5xx ends in ServerError after the policy's attempts."""
    simulator.configure(faults={"server_error_rate": 1.0, "routes": [ME]})
    with anyio.fail_after(DEADLINE), raises_clean(ServerError) as info:
        await client.me()
    assert info.value.status in (500, 502, 503)
    assert requests_to(simulator, ME) == QUICK_RETRY.attempts


async def test_bad_json_on_get_is_retried(
    client: LeonardoClient, simulator: Simulator, traffic: Traffic
) -> None:
    """A 200 whose body is not JSON is retried for a safe request."""
    simulator.configure(faults={"malformed_json_rate": 1.0, "routes": [ME]})
    traffic.after(route("/me"), reconfigure(simulator, faults={"malformed_json_rate": 0.0}))
    assert (await client.me()).user_id == simulator.user_id
    assert requests_to(simulator, ME) == 2


async def test_unexpected_shape_is_reported(client: LeonardoClient, simulator: Simulator) -> None:
    """Well-formed JSON of the wrong shape raises ResponseShapeError naming the path."""
    simulator.configure(faults={"unexpected_shape_rate": 1.0, "routes": [ME]})
    with raises_clean(ResponseShapeError, match=r"@ \$"):
        await client.me()


@pytest.mark.parametrize("style", ["seconds", "http-date"])
async def test_retry_after_is_honoured(simulator: Simulator, style: str) -> None:
    """After a 429 with Retry-After, the next request waits at least that long."""
    simulator.configure(
        retry_after_style=style,
        faults={"rate_limit_storm_rate": 1.0, "rate_limit_storm_length": 1, "routes": [ME]},
    )
    traffic = Traffic()
    traffic.after(
        route("/me", status=429), reconfigure(simulator, faults={"rate_limit_storm_rate": 0.0})
    )
    async with make_client(simulator, traffic) as client:
        with anyio.fail_after(DEADLINE):
            assert (await client.me()).user_id == simulator.user_id
        assert client.limiter.rate_limited == 1
    refused, accepted = traffic.to("/me")
    assert (refused.status, accepted.status) == (429, 200)
    assert refused.answered_at is not None
    # The simulator asks for at least one whole second: never come back sooner.
    assert accepted.sent_at - refused.answered_at >= 0.9


async def test_429_without_retry_after_backs_off(simulator: Simulator) -> None:
    """A 429 without Retry-After is retried after a backoff pause, and succeeds."""
    simulator.configure(
        retry_after_style="none",
        faults={"rate_limit_storm_rate": 1.0, "rate_limit_storm_length": 1},
    )
    traffic = Traffic()
    traffic.after(
        route("/me", status=429), reconfigure(simulator, faults={"rate_limit_storm_rate": 0.0})
    )
    async with make_client(simulator, traffic) as client:
        with anyio.fail_after(DEADLINE):
            await client.me()
        assert client.limiter.rate_limited == 1
        assert client.limiter.requests.waited > 0
    assert [e.status for e in traffic.to("/me")] == [429, 200]


async def test_persistent_429_raises_rate_limit_error(simulator: Simulator) -> None:
    """When retries run out on 429s, RateLimitError carries the server's Retry-After."""
    simulator.configure(faults={"rate_limit_storm_rate": 1.0, "routes": [ME]})
    async with make_client(simulator, retry=RetryPolicy(attempts=1)) as client:
        with raises_clean(RateLimitError) as info:
            await client.me()
    assert info.value.status == 429
    assert info.value.retry_after == 1.0


async def test_unknown_route_is_not_found(simulator: Simulator) -> None:
    """A 404 from the API raises NotFoundError and is not retried."""
    async with make_client(simulator, base_url=simulator.base_url + "/nowhere") as client:
        with raises_clean(NotFoundError):
            await client.me()
    assert simulator.statistics().requests.get("(unmatched)") == 1


async def test_connection_refused_is_a_transport_error() -> None:
    """Nothing listening: the request is retried, then TransportError is raised."""
    async with Simulator(sim_config()) as sim:
        base_url = sim.base_url
    async with LeonardoClient(KEY, base_url=base_url, retry=QUICK_RETRY) as client:
        with anyio.fail_after(DEADLINE), raises_clean(TransportError) as info:
            await client.me()
    assert "/me" in info.value.url


@pytest.mark.parametrize("own_session", [True, False])
async def test_api_timeout_applies(simulator: Simulator, own_session: bool) -> None:
    """A stalled API call ends after Timeouts.api, with the client's own session or a given one."""
    simulator.configure(faults={"slow_rate": 1.0, "slow_seconds": 60.0, "routes": [ME]})
    options: dict[str, Any] = {
        "retry": RetryPolicy(attempts=1),
        "timeouts": Timeouts(api=0.3, connect=5.0),
    }
    with anyio.fail_after(DEADLINE):
        if own_session:
            async with make_client(simulator, **options) as client:
                with raises_clean(TransportError):
                    await client.me()
        else:
            async with make_client(simulator, Traffic(), **options) as client:
                with raises_clean(TransportError):
                    await client.me()
