"""HTTP load generator for the endpoint benchmarks, run as its own process so it never shares a core's
event loop with a server under test.

Two modes, both over keep-alive connections (aiohttp, one pooled session):

- closed loop (``--concurrency N``): N workers each send the next request as soon as the last one answered;
  what it measures is capacity (requests per second) and the latency at that load;
- open loop (``--rate R``): requests fall due on a fixed schedule of R per second whatever the answers, so
  when the server is slower than the schedule the excess really queues (or is refused), as with real traffic;
  ``--connections`` bounds the keep-alive connections (a fleet of clients), and latency runs from when a
  request was due, so a request waiting for a free connection counts that wait.

It prints one JSON document on stdout: counts per status, rps of 200 answers, and latency percentiles (ms)
of the 200 answers and of the refused ones (429/503) separately. It also reports what it really offered
(``sent``): when each request's headers were written to its socket (an aiohttp trace hook), the achieved
send rate over the measured window and how late each send was against its due time, so a generator that
cannot keep up with ``--rate`` shows it instead of passing its own backlog off as server latency. A warm-up
phase runs first and is not counted. Usage::

    python tests/benchmarks/loadgen.py --url URL --body-file F [--header 'K: V'] (--concurrency N | --rate R)
        [--duration 30] [--warmup 3] [--connections C] [--samples OUT.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

REFUSED = (429, 503)


def percentiles(samples: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max of latencies in seconds, as milliseconds (None when there is no sample)."""
    if not samples:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    values = np.asarray(samples) * 1000.0
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "max_ms": float(values.max())}


class Recorder:
    """Latencies per outcome, counted only between ``start`` and ``stop`` (the measured window)."""

    def __init__(self) -> None:
        self.counting = False
        self.ok: list[float] = []
        self.refused: list[float] = []
        self.statuses: dict[str, int] = {}
        self.errors = 0
        self.sent_at: list[float] = []
        self.send_lag: list[float] = []
        self.samples: list[tuple[float, float, int]] = []  # (started or due, seconds, status or 0)

    def add(self, status: int | None, seconds: float, *, counted: bool | None = None, sent_at: float = 0.0,
            send_lag: float | None = None) -> None:
        # Open loop decides per request (by its due time); closed loop by the window at completion.
        if not (self.counting if counted is None else counted):
            return
        if sent_at:
            self.sent_at.append(sent_at)
        if send_lag is not None:
            self.send_lag.append(send_lag)
        self.samples.append((time.perf_counter() - seconds, seconds, status or 0))
        if status is None:
            self.errors += 1
            return
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if status == 200:
            self.ok.append(seconds)
        elif status in REFUSED:
            self.refused.append(seconds)


async def _headers_sent(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
    sent = context.trace_request_ctx
    if sent is not None and not sent[0]:
        sent[0] = time.perf_counter()


def tracing() -> aiohttp.TraceConfig:
    """A trace hook stamping when a request's headers went out (the ``trace_request_ctx`` list passed)."""
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_headers_sent)
    return config


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
               recorder: Recorder, scheduled: float | None = None, counted: bool | None = None) -> None:
    # Open loop: latency runs from when the request was due, so waiting for a free connection counts
    # (no coordinated omission).
    started = time.perf_counter() if scheduled is None else scheduled
    sent = [0.0]
    try:
        async with session.post(url, data=body, headers=headers, trace_request_ctx=sent) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = None
    recorder.add(status, time.perf_counter() - started, counted=counted, sent_at=sent[0],
                 send_lag=sent[0] - started if sent[0] and scheduled is not None else None)


async def closed_loop(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], *,
                      concurrency: int, warmup: float, duration: float, recorder: Recorder) -> float:
    """N workers back to back; returns the measured window's length in seconds."""
    stop_at = time.perf_counter() + warmup + duration

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            await _one(session, url, body, headers, recorder)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    recorder.counting, window_start = True, time.perf_counter()
    await asyncio.sleep(duration)
    recorder.counting, window = False, time.perf_counter() - window_start
    await asyncio.gather(*tasks)
    return window


async def open_loop(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], *,
                    rate: float, warmup: float, duration: float, recorder: Recorder) -> float:
    """Requests started on a fixed schedule of ``rate`` per second; returns the measured window's length."""
    interval = 1.0 / rate
    start = time.perf_counter()
    window_start = start + warmup
    end = window_start + duration
    pending: set[asyncio.Task] = set()
    n = 0
    while True:
        due = start + n * interval
        if due >= end:
            break
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        # Start every request that is due (the loop may wake late): the schedule, not the answers, sets the pace.
        while start + n * interval <= time.perf_counter() and start + n * interval < end:
            due = start + n * interval
            task = asyncio.create_task(_one(session, url, body, headers, recorder, due, due >= window_start))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
    if pending:
        await asyncio.gather(*pending)
    return duration


def sent_summary(recorder: Recorder, rate: float) -> dict[str, Any]:
    """What went out in the measured window: count, achieved rate (between the first and last send) and,
    open loop, the send lag behind the schedule (ms) and the achieved rate as a fraction of ``rate``."""
    stamps = sorted(recorder.sent_at)
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    achieved = (len(stamps) - 1) / span if span > 0 else None
    lag = percentiles(recorder.send_lag)
    return {"requests": len(stamps), "rps": achieved,
            "of_target": achieved / rate if rate and achieved is not None else None,
            "lag_p50_ms": lag["p50_ms"], "lag_p99_ms": lag["p99_ms"], "lag_max_ms": lag["max_ms"]}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    body = Path(args.body_file).read_bytes()
    headers = {"Content-Type": "application/json"}
    for header in args.header:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    recorder = Recorder()
    connector = aiohttp.TCPConnector(limit=args.connections, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",),
                                     trace_configs=[tracing()]) as session:
        if args.rate:
            window = await open_loop(session, args.url, body, headers, rate=args.rate, warmup=args.warmup,
                                     duration=args.duration, recorder=recorder)
        else:
            window = await closed_loop(session, args.url, body, headers, concurrency=args.concurrency,
                                       warmup=args.warmup, duration=args.duration, recorder=recorder)
    if args.samples:
        # Every measured request, for finding when slow answers happen (stalls of a period show up here).
        first = min((t for t, _, _ in recorder.samples), default=0.0)
        Path(args.samples).write_text("".join(json.dumps([round(t - first, 6), round(s, 6), status]) + "\n"
                                              for t, s, status in sorted(recorder.samples)))
    return {
        "mode": "open" if args.rate else "closed", "concurrency": args.concurrency, "rate": args.rate,
        "seconds": window, "statuses": recorder.statuses, "errors": recorder.errors,
        "ok": len(recorder.ok), "refused": len(recorder.refused), "rps": len(recorder.ok) / window,
        "latency": percentiles(recorder.ok), "refused_latency": percentiles(recorder.refused),
        "sent": sent_summary(recorder, args.rate),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: requests started per second")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--samples", default="", help="write [start s, latency s, status] per measured request "
                                                      "(JSON lines; status 0 is a connection error) to this file")
    parser.add_argument("--connections", type=int, default=0,
                        help="most keep-alive connections at once (0: one per concurrent request); open loop: "
                             "a fleet of this many clients, requests past it wait for a free one")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the plain loop only lowers the generator's ceiling
        pass
    json.dump(asyncio.run(run(args)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
