"""The deployment's Mosquitto config (deploy/mosquitto): logins, client ids and ACLs, on a real broker.

Debian's mosquitto runs the repository's config with only the listener moved to a free loopback
port, the persistence location to a temporary directory and the dynamic-security plugin to
Debian's copy; the accounts file is the repository's own, so these tests check what
docker-compose would run.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from ivr.bus.base import BusRefusedError
from ivr.bus.broker import EmbeddedBroker
from ivr.bus.mqtt import Backoff, MqttBus
from ivr.bus.shared import require_shared_subscriptions
from ivr.bus.url import BrokerConfig
from ivr.events import PARTITIONS, ticket_topic
from ivr.ledger.consumer import LedgerConsumer
from ivr.ledger.partitions import PartitionShare

pytestmark = pytest.mark.broker

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
#: The dev-only passwords documented in deploy/mosquitto/mosquitto.conf, and the client id each
#: account is bound to.
ACCOUNTS = {
    "ivr": ("ivr-dev-only", "ivr-console"),
    "ivr-2": ("ivr-2-dev-only", "ivr-console-2"),
    "relay": ("relay-dev-only", "ivr-relay"),
    "ledger": ("ledger-dev-only", "ivr-ledger"),
    "ledger-2": ("ledger-2-dev-only", "ivr-ledger-2"),
    "ledger-1-of-2": ("ledger-1-of-2-dev-only", "ivr-ledger-1-of-2"),
    "ledger-2-of-2": ("ledger-2-of-2-dev-only", "ivr-ledger-2-of-2"),
    "ledger-relay": ("ledger-relay-dev-only", "ivr-ledger-relay"),
    "integrator": ("integrator-dev-only", "integrator"),
    "healthcheck": ("healthcheck-dev-only", "healthcheck"),
}
REFUSED = {5, 0x87}  # 3.1.1 "not authorised", as paho may report it
WAIT = 20.0


@pytest.fixture
async def deployed(needs_mosquitto, tmp_path):
    """Mosquitto running deploy/mosquitto/mosquitto.conf on a free loopback port."""
    async with EmbeddedBroker(base_config=DEPLOY / "mosquitto.conf", persistence_dir=tmp_path / "data") as broker:
        yield broker.config


def login(config: BrokerConfig, user: str | None, password: str | None = None) -> BrokerConfig:
    """``config`` with a user and its dev password (or the one given)."""
    if user is None:
        return config
    return BrokerConfig(host=config.host, port=config.port, username=user, password=password or ACCOUNTS[user][0])


def bus(config, user, *, client_id: str | None = None, **kw):
    """An MqttBus logged in as ``user`` (with its own client id unless told) that gives up at once when refused."""
    own = ACCOUNTS[user][1] if user else None
    return MqttBus(
        config=login(config, user), client_id=client_id or own, backoff=Backoff(initial=0.02, maximum=0.2), **kw
    )


async def connected(*buses: MqttBus) -> None:
    """Wait (bounded) until every bus is connected."""
    async with asyncio.timeout(WAIT):
        for each in buses:
            await each.wait_connected()


async def refused(candidate: MqttBus) -> int:
    """The CONNACK code with which the broker refuses ``candidate`` (fails the test if it lets it in)."""
    async with candidate:
        with pytest.raises(BusRefusedError) as refusal:
            async with asyncio.timeout(WAIT):
                await candidate.wait_connected()
    return refusal.value.code


async def test_anonymous_connect_is_refused(deployed):
    """allow_anonymous false: a client without a login is refused, with the broker's reason."""
    assert await refused(bus(deployed, None)) in REFUSED


async def test_wrong_password_is_refused(deployed):
    """A known user with the wrong password is refused."""
    assert await refused(MqttBus(config=login(deployed, "ivr", "not-the-password"))) in REFUSED | {4, 0x86}


async def test_integrator_cannot_take_the_ledgers_session(deployed, inbox):
    """An integrator connecting with the ledger's client id is refused; the ledger still gets its queued tickets."""
    ledger_session = {"client_id": "ivr-ledger", "persistent": True, "manual_ack": True}
    tickets = LedgerConsumer.subscriptions()
    async with bus(deployed, "ledger", subscriptions=tickets, **ledger_session) as ledger:
        await connected(ledger)  # the session and its subscription now exist on the broker
    async with bus(deployed, "ivr") as ivr:
        await connected(ivr)
        await ivr.publish("ivr/v2/ticket/created/0", b"t-1")  # queued for the offline ledger
    thief = bus(deployed, "integrator", subscriptions=["ivr/v2/status/#"], **ledger_session)
    assert await refused(thief) in REFUSED
    async with bus(deployed, "ledger", subscriptions=tickets, **ledger_session) as ledger:
        [ticket] = await inbox(ledger).count(1)
    assert ticket.payload == b"t-1"


async def test_each_login_uses_only_its_own_client_id(deployed):
    """A bound account is refused under another account's client id, or a made-up one, and let in under its own."""
    assert await refused(bus(deployed, "ledger", client_id="ivr-ledger-2")) in REFUSED
    assert await refused(bus(deployed, "integrator", client_id="crm-link")) in REFUSED
    async with bus(deployed, "ledger-2") as second:
        await connected(second)


async def test_the_ivr_login_cannot_take_the_ledgers_session(deployed, inbox):
    """Logged in as ivr (the console's account), the client id ivr-ledger is refused; the ledger keeps its tickets."""
    ledger_session = {"client_id": "ivr-ledger", "persistent": True, "manual_ack": True}
    tickets = LedgerConsumer.subscriptions()
    async with bus(deployed, "ledger", subscriptions=tickets, **ledger_session) as ledger:
        await connected(ledger)
    async with bus(deployed, "ivr") as ivr:
        await connected(ivr)
        await ivr.publish("ivr/v2/ticket/created/0", b"t-1")  # queued for the offline ledger
    assert await refused(bus(deployed, "ivr", subscriptions=tickets, **ledger_session)) in REFUSED
    async with bus(deployed, "ledger", subscriptions=tickets, **ledger_session) as ledger:
        [ticket] = await inbox(ledger).count(1)
    assert ticket.payload == b"t-1"


@pytest.mark.parametrize("user", sorted(ACCOUNTS))
async def test_no_login_can_use_a_client_id_another_owns(deployed, user):
    """Every account is bound to its own client id, and refused under each other account's and a made-up one."""
    others = sorted({own for name, (_, own) in ACCOUNTS.items() if name != user})
    for client_id in [*others, "made-up"]:
        assert await refused(bus(deployed, user, client_id=client_id)) in REFUSED, client_id
    async with bus(deployed, user) as own:
        await connected(own)


def test_every_account_is_bound_to_a_client_id_of_its_own():
    """The accounts file binds each login to one client id, none shared, and the tests know every account."""
    clients = json.loads((DEPLOY / "dynamic-security.json").read_text())["clients"]
    bound = {c["username"]: c.get("clientid") for c in clients}
    assert bound == {user: own for user, (_, own) in ACCOUNTS.items()}
    assert len(set(bound.values())) == len(bound)


async def test_the_compose_healthcheck_runs_under_its_own_login(deployed):
    """docker-compose's readiness check, as written there, logs in and exits 0 (a bound account under its id)."""
    compose = (DEPLOY.parents[1] / "docker-compose.yml").read_text()
    [check] = re.findall(r'test: \[("CMD", "mosquitto_sub".*?)\]', compose, re.DOTALL)
    argv = json.loads(f"[{check}]")[1:]
    argv[argv.index("127.0.0.1") - 1 : argv.index("127.0.0.1") + 1] = ["-h", deployed.host, "-p", str(deployed.port)]
    process = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(WAIT):
        _, err = await process.communicate()
    assert process.returncode == 0, err.decode()


async def test_two_ledger_accounts_share_the_ticket_events(deployed, inbox):
    """Multiple ledgers: two accounts, each with its own client id, split one shared subscription."""
    shared = LedgerConsumer.subscriptions(share="ledgers")
    async with (
        bus(deployed, "ledger", subscriptions=shared) as first,
        bus(deployed, "ledger-2", subscriptions=shared) as second,
        bus(deployed, "ivr") as ivr,
    ):
        await connected(first, second, ivr)
        boxes = inbox(first), inbox(second)
        sent = {f"t-{n}".encode() for n in range(20)}
        for payload in sorted(sent):
            await ivr.publish("ivr/v2/ticket/created/0", payload)
        await boxes[0].until(lambda _: len(boxes[0].items) + len(boxes[1].items) >= len(sent))
    received = boxes[0].payloads + boxes[1].payloads
    assert sorted(received) == sorted(sent)


async def test_partitioned_ledger_accounts_each_get_their_own_partitions(deployed, inbox):
    """`--partitions 1/2` and `2/2` log in as their own accounts; the IVR's tickets on all partitions reach one each."""
    shares = {user: PartitionShare.parse(f"{k}/2") for k, user in ((1, "ledger-1-of-2"), (2, "ledger-2-of-2"))}
    async with (
        bus(
            deployed, "ledger-1-of-2", subscriptions=LedgerConsumer.subscriptions(partitions=shares["ledger-1-of-2"])
        ) as one,
        bus(
            deployed, "ledger-2-of-2", subscriptions=LedgerConsumer.subscriptions(partitions=shares["ledger-2-of-2"])
        ) as two,
        bus(deployed, "integrator", subscriptions=["ivr/v2/#"]) as crm,
        bus(deployed, "ivr") as ivr,
    ):
        await connected(one, two, crm, ivr)
        boxes, seen = {"ledger-1-of-2": inbox(one), "ledger-2-of-2": inbox(two)}, inbox(crm)
        await ivr.publish("ivr/v2/ticket/other", b"not a partition")  # the ivr account writes partitions only
        for partition in range(PARTITIONS):
            await ivr.publish(ticket_topic(partition), str(partition))
        await seen.count(PARTITIONS)
        for box in boxes.values():
            await box.count(PARTITIONS // 2)
        await one.publish("ivr/v2/status/ivr-ledger-1-of-2", b"online", retain=True)
        await two.publish("ivr/v2/status/ivr-ledger-1-of-2", b"offline", retain=True)  # not its own
        await two.publish("ivr/v2/status/ivr-ledger-2-of-2", b"online", retain=True)
        await seen.count(PARTITIONS + 2)
    for user, box in boxes.items():
        assert [int(p) for p in box.payloads] == shares[user].partitions
    assert seen.payloads == [str(p).encode() for p in range(PARTITIONS)] + [b"online", b"online"]
    assert [m.topic for m in seen.items[-2:]] == ["ivr/v2/status/ivr-ledger-1-of-2", "ivr/v2/status/ivr-ledger-2-of-2"]


async def test_integrator_publishes_nothing(deployed, inbox):
    """An integrator may read everything but write nothing: each of its publishes is dropped by the broker."""
    async with (
        bus(deployed, "ivr", subscriptions=["ivr/v2/#"]) as ivr,
        bus(deployed, "integrator") as integrator,
    ):
        await connected(ivr, integrator)
        box = inbox(ivr)
        for topic in ("ivr/v2/ticket/created/0", "ivr/v2/ledger/incident_deducted", "ivr/v2/deadletter"):
            await integrator.publish(topic, b"forged")  # acknowledged, then dropped
        await integrator.publish("ivr/v2/status/integrator", b"online", retain=True)
        await ivr.publish("ivr/v2/call/started", b"marker")  # after the forgeries, on the broker's one path
        [first] = await box.count(1)
    assert first.payload == b"marker", "an integrator's message was delivered"


async def test_ivr_cannot_forge_verdicts_dead_letters_or_others_status(deployed, inbox):
    """The ivr account writes call, auth and ticket events and its own status; the ledger's topics are dropped."""
    async with (
        bus(deployed, "integrator", subscriptions=["ivr/v2/#"]) as crm,
        bus(deployed, "ivr") as ivr,
    ):
        await connected(crm, ivr)
        box = inbox(crm)
        await ivr.publish("ivr/v2/ledger/incident_deducted", b"forged verdict")
        await ivr.publish("ivr/v2/ledger/deduction_rejected", b"forged verdict")
        await ivr.publish("ivr/v2/deadletter", b"forged dead letter")
        await ivr.publish("ivr/v2/status/ivr-ledger", b"offline", retain=True)
        await ivr.publish("ivr/v2/status/ivr-console", b"online", retain=True)  # its own
        await ivr.publish("ivr/v2/auth/granted", b"a-1")
        await ivr.publish("ivr/v2/ticket/created/0", b"t-1")
        await ivr.publish("ivr/v2/call/started", b"c-1")
        await box.count(4)
    assert box.payloads == [b"online", b"a-1", b"t-1", b"c-1"]


async def test_each_console_writes_its_worlds_statuses_and_no_other_consoles(deployed, inbox):
    """The ivr login writes the statuses under ivr-console/ (its worlds'), not ivr-console-2's nor a lookalike's."""
    async with (
        bus(deployed, "integrator", subscriptions=["ivr/v2/status/#"]) as crm,
        bus(deployed, "ivr", instance="ivr-console") as ivr,
        bus(deployed, "ivr-2", instance="ivr-console-2") as ivr2,
    ):
        await connected(crm, ivr, ivr2)
        box = inbox(crm)
        await box.count(2)  # each console's own online
        await ivr.publish("ivr/v2/status/ivr-console-2/world-1", b"online", retain=True)
        await ivr.publish("ivr/v2/status/ivr-console-world-1", b"online", retain=True)
        await ivr2.publish("ivr/v2/status/ivr-console/world-1", b"online", retain=True)
        await ivr.keep_status("ivr-console/world-1")
        await ivr2.keep_status("ivr-console-2/world-1-ledger")
        await box.count(4)
        await ivr.drop_status("ivr-console/world-1")
        await ivr2.drop_status("ivr-console-2/world-1-ledger")
        await box.count(6)
    assert [(m.topic, m.payload) for m in box.items[2:6]] == [
        ("ivr/v2/status/ivr-console/world-1", b"online"),
        ("ivr/v2/status/ivr-console-2/world-1-ledger", b"online"),
        ("ivr/v2/status/ivr-console/world-1", b""),
        ("ivr/v2/status/ivr-console-2/world-1-ledger", b""),
    ]


async def test_ledger_writes_its_verdicts_and_only_its_own_status(deployed, inbox):
    """The ledger reads ticket events and publishes verdicts and dead letters; no ticket, no other process's status."""
    async with (
        bus(deployed, "ledger", subscriptions=LedgerConsumer.subscriptions()) as ledger,
        bus(deployed, "integrator", subscriptions=["ivr/v2/#"]) as crm,
        bus(deployed, "ivr") as ivr,
    ):
        await connected(ledger, crm, ivr)
        tickets, seen = inbox(ledger), inbox(crm)
        await ivr.publish("ivr/v2/ticket/created/0", b"t-1")
        [ticket] = await tickets.count(1)
        await ledger.publish("ivr/v2/ticket/created/0", b"forged ticket")
        await ledger.publish("ivr/v2/status/ivr-console", b"offline", retain=True)
        await ledger.publish("ivr/v2/status/ivr-ledger-2", b"online", retain=True)
        await ledger.publish("ivr/v2/ledger/incident_deducted", b"v-1")
        await ledger.publish("ivr/v2/deadletter", b"d-1")
        await ledger.publish("ivr/v2/status/ivr-ledger", b"online", retain=True)
        await seen.count(4)
    assert ticket.payload == b"t-1"
    assert seen.payloads == [b"t-1", b"v-1", b"d-1", b"online"]


def test_sessions_expire_and_queues_are_bounded():
    """Abandoned sessions expire after the documented week; one client's queue is capped below a million."""
    conf = (DEPLOY / "mosquitto.conf").read_text()
    options = dict(re.findall(r"^(\w+)[ \t]+(\S+)[ \t]*$", conf, re.MULTILINE))
    assert options["persistent_client_expiration"] == "7d"
    assert 60_000 * 3 <= int(options["max_queued_messages"]) < 1_000_000  # 3 x the load's largest backlog
    assert 0 < int(options["max_queued_bytes"]) <= 512 * 1024 * 1024


async def test_ivr_events_runs_under_an_integrators_own_client_id(deployed):
    """`ivr events --client-id` logs in as the integrator under its bound id and prints what the IVR published."""
    event = {"type": "ivr.call.started", "subject": "call-1", "sequence": "00001", "data": {}}
    async with bus(deployed, "ivr") as ivr:
        await connected(ivr)
        await ivr.publish("ivr/v2/call/started", json.dumps(event), retain=True)  # whenever `ivr events` subscribes
    url = f"mqtt://integrator:integrator-dev-only@{deployed.host}:{deployed.port}"
    command = [sys.executable, "-m", "ivr", "events", "--broker", url, "--client-id", "integrator", "--count", "1"]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(WAIT):
        out, _ = await process.communicate()
    assert process.returncode == 0
    assert "ivr.call.started call=call-1 #00001" in out.decode()


async def test_ivr_events_without_the_bound_client_id_is_a_clear_error(deployed):
    """`ivr events` as the integrator under a made-up client id: refused, said in one line, no traceback."""
    url = f"mqtt://integrator:integrator-dev-only@{deployed.host}:{deployed.port}"
    command = [sys.executable, "-m", "ivr", "events", "--broker", url, "--count", "1"]
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(WAIT):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert "refused the connection" in err.decode()
    assert "needs --client-id" in err.decode()
    assert "Traceback" not in err.decode()


async def test_share_probe_lets_a_bound_ledger_start(deployed):
    """`--share` under a bound account: the probe's own id is refused in MQTT 5, and the ledger may start."""
    config = login(deployed, "ledger")
    await require_shared_subscriptions(config, client_id="ivr-ledger-probe", backoff=Backoff(initial=0.02, maximum=0.2))
