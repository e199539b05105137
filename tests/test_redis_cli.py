"""``--redis URL`` on the commands that submit: a batch and a generate sharing the key's
limits through a real Redis, and a URL that is not Redis's refused before anything is sent.

The key is this module's own (a fresh one per run), so that suites running at once on one
Redis never share its limits; what it wrote is deleted afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from _cli import FAST_POLL, cli, generate_args
from _redis import delete_namespace, namespace_keys, redis_or_skip

from leonardo_async._limits._redis import key_prefix
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

KEY = f"sk-redis-cli-{uuid.uuid4().hex}"
pytestmark = pytest.mark.leonardo_simulator(
    SimulatorConfig(api_key=KEY, durations=JobDurations.fixed(0.05), seed=3)
)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test server; the key's Redis keys are deleted afterwards."""
    url = redis_or_skip()
    try:
        yield url
    finally:
        delete_namespace(url, key_prefix("leonardo-async", KEY))


def _jobs(folder: Path, count: int) -> Path:
    path = folder / "jobs.jsonl"
    lines = [json.dumps({"prompt": f"shared {i}", "image": "start.png"}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_a_batch_with_redis_shares_the_keys_limits(
    sim: Simulator, folder: Path, redis_url: str
) -> None:
    """``batch --redis URL`` runs as without it, and leaves the key's state (named by its
    hash) in that Redis."""
    with anyio.fail_after(60):
        code = await cli("batch", _jobs(folder, 3), "--out", folder / "out", "--redis",
                         redis_url, *FAST_POLL)  # fmt: skip
    assert code == 0
    assert sim.statistics().generations_created == 3
    names = namespace_keys(redis_url, key_prefix("leonardo-async", KEY))
    assert names
    assert not [name for name in names if KEY in name]


# A job long enough for a few looks, each paced through the shared request bucket: one
# Redis call slower than the client's 0.5 s timeout on a loaded machine (which falls back
# to the local share) still leaves later calls to write the key's state.
@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(1.5))
async def test_generate_takes_the_url_from_the_environment(
    sim: Simulator, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LEONARDO_REDIS_URL`` does what ``--redis`` does when the option is not given."""
    monkeypatch.setenv("LEONARDO_REDIS_URL", redis_url)
    with anyio.fail_after(60):
        assert await cli(*generate_args(tmp_path / "video.mp4")) == 0
    assert namespace_keys(redis_url, key_prefix("leonardo-async", KEY))


async def test_a_url_that_is_not_redis_is_bad_input(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``--redis`` that is not a Redis URL exits 2 naming the option, nothing sent, and
    a password in it is not printed."""
    url = "http://user:hunter2@127.0.0.1:6379"
    code = await cli("batch", _jobs(folder, 1), "--out", folder / "out", "--redis", url)
    err = capsys.readouterr().err
    assert code == 2
    assert "--redis" in err
    assert "hunter2" not in err
    assert sim.statistics().generations_created == 0
