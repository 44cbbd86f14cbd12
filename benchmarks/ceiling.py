"""The raw MQTT ceiling of this machine against `ivr load` end to end, on one private broker.

Run by ``make bench``. In one go, on one private Mosquitto (a free loopback port, nodelay on):

1. ``ivr load --calls N --json`` end to end, as fast as possible: the IVR (this machine's first
   process), `ivr ledger` (a second), and the broker - calls/s and events/s until the ledger has
   answered every deductible ticket, and whether it deducted exactly once;
2. the raw ceiling for the same traffic: aiomqtt publishing as many messages as that run emitted
   events, of their mean size, at QoS 1 with 100 in flight (the IVR publisher's window), and a
   subscriber in another process (as the ledger is) receiving them all - messages/s from the first
   publish to the last message received.

It prints both and their ratios; the target is ``ivr load`` at >= 60 % of the ceiling.

    .venv/bin/python benchmarks/ceiling.py --calls 10000 [--json]
"""

# A script that prints its figures, outside any package.
# ruff: noqa: T201, INP001

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt

from ivr.bus.broker import EmbeddedBroker
from ivr.logs import configure

REPO = Path(__file__).resolve().parent.parent
TOPIC = "bench/ceiling"
INFLIGHT = 100
WAIT = 300.0


async def subscriber(port: int, count: int) -> None:
    """The receiving side (its own process): print "ready", then the wall time of the last message."""
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V311) as client:
        await client.subscribe(TOPIC, qos=1)
        print("ready", flush=True)
        seen = 0
        async with asyncio.timeout(WAIT):
            async for _ in client.messages:
                seen += 1
                if seen >= count:
                    break
        print(f"done {time.time():.6f} {seen}", flush=True)


async def raw_ceiling(port: int, count: int, size: int) -> dict[str, float]:
    """Publish ``count`` messages of ``size`` bytes (QoS 1, 100 in flight) to a subscriber process."""
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--subscriber", str(port), "--calls", str(count),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    if receiver.stdout is None:
        msg = "the subscriber has no stdout"
        raise RuntimeError(msg)
    ready = await asyncio.wait_for(receiver.stdout.readline(), 30)
    if ready.strip() != b"ready":
        msg = f"the subscriber did not start: {ready!r}"
        raise RuntimeError(msg)
    payload = b"x" * size
    todo = iter(range(count))
    async with aiomqtt.Client(
        "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V311, max_inflight_messages=INFLIGHT
    ) as client:
        client.pending_calls_threshold = INFLIGHT + 10

        async def worker() -> None:
            for _ in todo:
                await client.publish(TOPIC, payload, qos=1)

        started = time.time()
        await asyncio.gather(*(worker() for _ in range(INFLIGHT)))
        acked = time.time()
    line = await asyncio.wait_for(receiver.stdout.readline(), WAIT)
    await receiver.wait()
    _, last, seen = line.decode().split()
    elapsed = float(last) - started
    return {
        "messages": int(seen),
        "bytes": size,
        "seconds": round(elapsed, 3),
        "per_s": round(int(seen) / elapsed, 1),
        "publish_per_s": round(count / (acked - started), 1),
    }


def ivr_load(url: str, calls: int, extra: list[str]) -> dict[str, object]:
    """`ivr load --json` on the broker at ``url``, as its own process (as an operator runs it)."""
    argv = [sys.executable, "-m", "ivr", "load", "--calls", str(calls), "--broker", url, "--json", "--no-progress"]
    done = subprocess.run(  # noqa: S603 - our own CLI
        [*argv, *extra], capture_output=True, text=True, check=False, cwd=REPO, timeout=WAIT
    )
    if not done.stdout.strip():
        msg = f"ivr load printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
        raise RuntimeError(msg)
    report: dict[str, object] = json.loads(done.stdout)
    return report


async def main(calls: int, extra: list[str], *, as_json: bool) -> None:
    """Both measurements on one private broker, then the ratios."""
    configure(level="error")
    async with EmbeddedBroker() as broker:
        url = broker.config.url
        load = await asyncio.to_thread(ivr_load, url, calls, extra)
        events, size = int(load["events"]), int(load["event_bytes"])  # type: ignore[call-overload]
        raw = await raw_ceiling(broker.config.port, events, size)
    per_call = events / int(load["completed"]) if load["completed"] else 0.0  # type: ignore[call-overload]
    ceiling_calls = raw["per_s"] / per_call if per_call else 0.0
    result = {
        "ivr_load": {k: load[k] for k in ("completed", "calls_per_s", "events_per_s", "events", "event_bytes",
                                           "total_seconds", "exactly_once", "rss_mb", "ticket_to_answer_ms")},
        "raw_ceiling": raw,
        "ceiling_calls_per_s": round(ceiling_calls, 1),
        "ratio_events": round(float(load["events_per_s"]) / raw["per_s"], 3),  # type: ignore[arg-type]
        "ratio_calls": round(float(load["calls_per_s"]) / ceiling_calls, 3) if ceiling_calls else 0.0,  # type: ignore[arg-type]
    }  # fmt: skip
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"ivr load end to end: {load['completed']:,} calls, {events:,} events of {size} B in {load['total_seconds']} s"
        f" = {load['calls_per_s']:,} calls/s, {load['events_per_s']:,} events/s; exactly once: {load['exactly_once']}"
    )
    print(
        f"raw ceiling (aiomqtt QoS 1, {INFLIGHT} in flight, subscriber process): {raw['messages']:,} messages of"
        f" {size} B in {raw['seconds']} s = {raw['per_s']:,} msg/s (publisher acked {raw['publish_per_s']:,}/s)"
        f" = {ceiling_calls:,.0f} calls/s at {per_call:.2f} events per call"
    )
    print(f"ratio: events/s {result['ratio_events']:.1%}, calls/s {result['ratio_calls']:.1%} of the ceiling")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--subscriber", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.subscriber:
        asyncio.run(subscriber(args.subscriber, args.calls))
    else:
        asyncio.run(main(args.calls, rest, as_json=args.json))
