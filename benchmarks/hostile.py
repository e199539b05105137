"""What an answer that never ends costs the client: peak memory with the answer limit, and
(for contrast) without it.

A server in a process of its own answers ``GET /me`` with a 200 whose body never ends (a
megabyte after another, as fast as loopback takes it). This process, the client alone, then:

* ``capped``: ``client.me()`` N times, as users call it (each call is all its attempts, each
  read no further than the 1 MiB limit); peak RSS (``VmHWM``) before and after, and the
  seconds per call;
* ``uncapped``: one read of the same answer by the transport with no limit
  (``max_answer=None``, what every answer was before the limit), stopped after S seconds
  by its timeout; the peak RSS it reached. Skipped with ``--uncapped-seconds 0``.

    .venv/bin/python benchmarks/hostile.py --calls 20 --uncapped-seconds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import socket
import sys
import time
from typing import Any

from _common import machine, proc_status_kib, reset_peak_rss
from aiohttp import web

from leonardo_async import LeonardoClient, Limits, Request, RetryPolicy, TransportError
from leonardo_async._transport._aiohttp import AiohttpTransport

MIB = 1 << 20


def _serve(port: int) -> None:
    """The hostile server: every request is answered with a body that never ends."""

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/json"})
        await response.prepare(request)
        chunk = b" " * MIB
        try:
            while True:
                await response.write(chunk)
        except ConnectionError:  # the client stopped reading: what is measured
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", endless)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the hostile server did not start on port {port}")


def _peak_mib() -> float:
    return (proc_status_kib("VmHWM") or 0) / 1024


async def _capped(base_url: str, calls: int) -> dict[str, Any]:
    reset_peak_rss()
    before = _peak_mib()
    started = time.perf_counter()
    errors = 0
    retry = RetryPolicy(attempts=5, base_delay=0.0, max_delay=0.0)
    async with LeonardoClient("k", base_url=base_url, limits=Limits.off(), retry=retry) as client:
        for _ in range(calls):
            try:
                await client.me()
            except TransportError as exc:
                errors += 1
                last = str(exc)
    seconds = time.perf_counter() - started
    return {
        "calls": calls,
        "attempts_per_call": retry.attempts,
        "errors": errors,
        "error": last if errors else None,
        "peak_rss_before_mib": round(before, 1),
        "peak_rss_after_mib": round(_peak_mib(), 1),
        "seconds_per_call": round(seconds / calls, 3),
    }


async def _uncapped(base_url: str, seconds: float) -> dict[str, Any]:
    reset_peak_rss()
    before = _peak_mib()
    transport = AiohttpTransport()
    failure = ""
    try:
        await transport.handle(Request("GET", base_url + "/me", timeout=seconds, max_answer=None))
    except OSError as exc:  # the transport's MaybeSentError when the timeout ends the read
        failure = str(exc)
    finally:
        await transport.aclose()
    return {
        "seconds": seconds,
        "ended_by": failure,
        "peak_rss_before_mib": round(before, 1),
        "peak_rss_after_mib": round(_peak_mib(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="client.me() calls, capped")
    parser.add_argument(
        "--uncapped-seconds", type=float, default=2.0, help="the unlimited read's length (0: skip)"
    )
    args = parser.parse_args()
    logging.getLogger("leonardo_async").setLevel(logging.ERROR)  # a warning per retry
    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    try:
        _wait_for(port)
        base_url = f"http://127.0.0.1:{port}/api/rest/v1"
        capped = asyncio.run(_capped(base_url, args.calls))
        uncapped = (
            asyncio.run(_uncapped(base_url, args.uncapped_seconds))
            if args.uncapped_seconds > 0
            else None
        )
    finally:
        server.terminate()
        server.join(5)
    print(f"{'mode':<10} {'peak RSS before':>16} {'peak RSS after':>15}  notes")
    print(
        f"{'capped':<10} {capped['peak_rss_before_mib']:>12.1f} MiB "
        f"{capped['peak_rss_after_mib']:>11.1f} MiB  {capped['calls']} calls x "
        f"{capped['attempts_per_call']} attempts, {capped['seconds_per_call']:.3f} s per call"
    )
    if uncapped is not None:
        print(
            f"{'uncapped':<10} {uncapped['peak_rss_before_mib']:>12.1f} MiB "
            f"{uncapped['peak_rss_after_mib']:>11.1f} MiB  one read for {uncapped['seconds']:g} s"
        )
    print(f"capped error: {capped['error']}", file=sys.stderr)
    print(json.dumps({"machine": machine(), "capped": capped, "uncapped": uncapped}))


if __name__ == "__main__":
    main()
