"""The raw MQTT ceiling of this machine against `ivr load` end to end, on one private broker.

Run by ``make bench``. In one go, on one private Mosquitto (a free loopback port, nodelay on):

1. ``ivr load --calls N --json`` end to end, as fast as possible: the IVR (this machine's first
   process), `ivr ledger` (a second), and the broker - calls/s and events/s until the ledger has
   answered every deductible ticket, and whether it deducted exactly once;
2. the raw ceiling for the same traffic: the bus's own client (paho-mqtt on the asyncio loop,
   :mod:`ivr.bus.connection`) publishing as many messages as that run emitted
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

from ivr.bus.broker import EmbeddedBroker
from ivr.bus.connection import MqttConnection, Session
from ivr.bus.url import BrokerConfig
from ivr.logs import configure

REPO = Path(__file__).resolve().parent.parent
TOPIC = "bench/ceiling"
INFLIGHT = 100
WAIT = 300.0


async def subscriber(port: int, count: int) -> None:
    """The receiving side (its own process): print "ready", then the wall time of the last message."""
    seen = 0
    done = asyncio.get_running_loop().create_future()

    def on_message(_: object) -> None:
        nonlocal seen
        seen += 1
        if seen >= count and not done.done():
            done.set_result(time.time())

    connection = MqttConnection(BrokerConfig(port=port), Session(), on_published=lambda *_: None)
    connection.on_message = on_message
    await connection.connect(10.0)
    await connection.subscribe([TOPIC])
    print("ready", flush=True)
    async with asyncio.timeout(WAIT):
        last = await done
    print(f"done {last:.6f} {seen}", flush=True)
    connection.disconnect()


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
    sent = acked = 0
    all_acked = asyncio.get_running_loop().create_future()

    def send() -> None:
        nonlocal sent
        sent += 1
        connection.paho.publish(TOPIC, payload, qos=1)

    def on_published(_: int, __: bool) -> None:
        nonlocal acked
        acked += 1
        if sent < count:
            send()
        elif acked >= count and not all_acked.done():
            all_acked.set_result(time.time())

    connection = MqttConnection(BrokerConfig(port=port), Session(), on_published=on_published)
    await connection.connect(10.0)
    started = time.time()
    for _ in range(min(INFLIGHT, count)):
        send()
    async with asyncio.timeout(WAIT):
        finished = await all_acked
    connection.disconnect()
    line = await asyncio.wait_for(receiver.stdout.readline(), WAIT)
    await receiver.wait()
    _, last, seen = line.decode().split()
    elapsed = float(last) - started
    return {
        "messages": int(seen),
        "bytes": size,
        "seconds": round(elapsed, 3),
        "per_s": round(int(seen) / elapsed, 1),
        "publish_per_s": round(count / (finished - started), 1),
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
        f"raw ceiling (paho QoS 1, {INFLIGHT} in flight, subscriber process): {raw['messages']:,} messages of"
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
