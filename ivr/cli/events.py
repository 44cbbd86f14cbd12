"""`ivr events`: tail the event bus, one readable line per event, for integrators."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import signal
from typing import TYPE_CHECKING, Any

import click

from ivr.bootstrap import events_bus
from ivr.bus.base import BusRefusedError, TaskEndedError, wait_unless_ended
from ivr.bus.mqtt import MqttBus
from ivr.bus.url import DEFAULT_BROKER_URL, parse_broker_url
from ivr.cli.common import broker_option, require_broker
from ivr.events import TOPIC_ROOT
from ivr.secrets import scrub
from ivr.settings import Settings, read_settings

if TYPE_CHECKING:
    from ivr.bus.url import BrokerConfig

__all__ = ["events", "format_event"]

_SUMMARY_KEYS = ("outcome", "reason", "rule", "method", "queue", "priority", "ticket", "contract", "balance_after")


def format_event(topic: str, payload: bytes) -> str:
    """One line: time, type, call, and the fields an integrator looks for first."""
    try:
        event: dict[str, Any] = json.loads(payload)
        data = event.get("data") or {}
        fields = " ".join(f"{k}={data[k]}" for k in _SUMMARY_KEYS if data.get(k) is not None)
        head = f"{event.get('time', '?')} {event.get('type', topic)}"
        line = f"{head} call={event.get('subject', '?')} #{event.get('sequence', '?')} {fields}"
    except (ValueError, AttributeError):
        line = f"{topic} {payload[:200]!r}"
    return scrub(line.rstrip())


@click.command()
@broker_option(help_text="The broker to listen to.", default=DEFAULT_BROKER_URL)
@click.option(
    "--type", "pattern", default="*", show_default=True, help="Only event types matching this glob (ivr.auth.*)."
)
@click.option("--json", "as_json", is_flag=True, help="Print each event's JSON as received, one per line.")
@click.option("--root", default=TOPIC_ROOT, show_default=True, help="Topic root to listen under.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many events [default: never].")
@click.option(
    "--client-id",
    default=None,
    help="The client id your login is bound to (deploy/mosquitto binds one to each integrator's account) "
    "[default: one the broker makes up].",
)
def events(  # noqa: PLR0913 - one keyword per option
    broker: BrokerConfig | None, pattern: str, *, as_json: bool, root: str, count: int | None, client_id: str | None
) -> None:
    """Print events as they cross the bus, until interrupted (or --count reached)."""
    config = broker or parse_broker_url(DEFAULT_BROKER_URL)
    require_broker(config, client_id=client_id)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            settings = read_settings(broker=config, root=root, instance=client_id)
            asyncio.run(_tail(settings, pattern, as_json=as_json, count=count))
    except BusRefusedError as exc:
        hint = "" if client_id else " (a login bound to a client id needs --client-id)"
        raise click.ClickException(f"{exc}{hint}") from None


async def _tail(settings: Settings, pattern: str, *, as_json: bool, count: int | None) -> None:
    """Print until --count is reached or SIGTERM comes, whether or not anything is arriving."""
    assert settings.broker is not None  # noqa: S101 - `events` resolved the broker
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with events_bus(settings.broker, client_id=settings.instance, root=settings.root) as bus:
        printing = asyncio.create_task(_print(bus, pattern, as_json=as_json, count=count))
        try:
            await wait_unless_ended(stop, printing)
        except TaskEndedError:
            return  # --count reached
        finally:
            printing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printing


async def _print(bus: MqttBus, pattern: str, *, as_json: bool, count: int | None) -> None:
    """One line per delivery whose type matches ``pattern``, until ``count`` events are printed."""
    seen = 0
    async for delivery in bus.deliveries():
        if delivery.oversize is not None:
            if pattern == "*":
                click.echo(f"{delivery.topic} (a message of {delivery.oversize} bytes, over the size limit: not shown)")
            continue
        if "/status/" in delivery.topic or delivery.topic.endswith("/deadletter"):
            if pattern == "*":
                click.echo(f"{delivery.topic} {delivery.payload.decode(errors='replace')}")
            continue
        try:
            event_type = str(json.loads(delivery.payload).get("type", ""))
        except (ValueError, AttributeError):
            event_type = ""
        if not fnmatch.fnmatchcase(event_type, pattern):
            continue
        click.echo(
            delivery.payload.decode(errors="replace") if as_json else format_event(delivery.topic, delivery.payload)
        )
        seen += 1
        if count is not None and seen >= count:
            return
