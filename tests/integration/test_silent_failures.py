"""Failures that used to be silent or hang: each now ends with a clear error, or stops when asked.

`ivr ledger --share` on a broker without shared subscriptions (a real nats-server's or RabbitMQ's MQTT listener),
`ivr load` whose ledger dies, `ivr events` sent SIGTERM, and a ledger file that cannot be written:
read-only, on a path that cannot be made, or on a full disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.bus.base import ONLINE
from ivr.bus.mqtt import Backoff, MqttBus
from ivr.bus.shared import SharedSubscriptionsUnavailableError, require_shared_subscriptions
from ivr.ledger.store import SqliteLedgerStore
from ivr.load.ledger import LedgerProcess
from ivr.subprocesses import end_process
from tests.conftest import DEFAULT_WORLD_PATH
from tests.integration.conftest import IVR, WAIT, collector, ivr, ticket_event
from tests.nats import NatsCluster

pytestmark = pytest.mark.broker

FAST = Backoff(initial=0.05, maximum=0.5)


# -- --share where the broker has no shared subscriptions ------------------------------------


@pytest.fixture
async def nats_mqtt(tmp_path):
    """A nats-server of the test's own with JetStream and an MQTT listener on free loopback ports."""
    async with NatsCluster(tmp_path / "nats", size=1) as nats:
        yield nats.nodes[0].config


async def test_nats_mqtt_grants_no_shared_subscriptions_and_mosquitto_does(nats_mqtt, private_broker):
    """The probe: nats-server refuses MQTT 5 (where shared subscriptions live); Mosquitto has them."""
    with pytest.raises(SharedSubscriptionsUnavailableError, match="refused MQTT 5"):
        await require_shared_subscriptions(nats_mqtt, client_id="probe-nats", backoff=FAST)
    await require_shared_subscriptions(private_broker.config, client_id="probe-mosquitto", backoff=FAST)


async def test_rabbitmq_mqtt_closes_an_mqtt5_connect_which_the_probe_takes_for_no(rabbitmq):
    """RabbitMQ 3.10 closes an MQTT 5 CONNECT without a CONNACK and answers 3.1.1: no shared subscriptions.

    Before, the probe took the closed connection for a broker not up yet and asked again for ever.
    """
    with pytest.raises(SharedSubscriptionsUnavailableError, match=r"refused MQTT 5.*closed the connection unanswered"):
        async with asyncio.timeout(WAIT):
            await require_shared_subscriptions(rabbitmq.config, client_id="probe-rabbitmq", backoff=FAST)


async def test_ledger_share_on_nats_is_refused_at_start_up(nats_mqtt, tmp_path):
    """`ivr ledger run --share` on NATS's MQTT listener exits 1 saying why, before making its file."""
    await _share_is_refused(nats_mqtt.url, tmp_path / "ledger.db")


async def test_ledger_share_on_rabbitmq_is_refused_at_start_up(rabbitmq, tmp_path):
    """`ivr ledger run --share` on RabbitMQ 3.10's MQTT listener exits 1 saying why, before making its file."""
    await _share_is_refused(rabbitmq.config.url, tmp_path / "ledger.db")


async def _share_is_refused(url: str, db: Path) -> None:
    status, out = await ivr("ledger", "--db", str(db), "run", "--share", "g", "--broker", url)
    assert status == 1, out
    assert "Error: --share needs shared subscriptions" in out
    assert f"the broker at {url} grants no shared subscriptions: it refused MQTT 5" in out
    assert "Traceback" not in out
    assert not db.exists()  # noqa: ASYNC240 - one stat, after the process has ended


async def test_ledger_share_on_mosquitto_starts(private_broker, tmp_path):
    """The same option on Mosquitto: the ledger is online and deducts."""
    ledger = LedgerProcess(
        config=private_broker.config,
        db=tmp_path / "ledger.db",
        fixture=DEFAULT_WORLD_PATH,
        client_id="shared-ledger-1",
        source="shared-ledger-1",
        share="g",
    )
    await ledger.start()
    try:
        async with (
            collector(private_broker.config, "ivr/v2/ledger/#", client_id="share-watch") as verdicts,
            MqttBus(config=private_broker.config) as feeder,
        ):
            await feeder.wait_connected()
            await feeder.publish("ivr/v2/ticket/created/0", ticket_event("2999010").to_json())
            async with asyncio.timeout(WAIT):
                while not verdicts:
                    await asyncio.sleep(0.05)
    finally:
        await ledger.stop()


# -- ivr load when its ledger dies ----------------------------------------------------------


def _children(pid: int) -> dict[int, str]:
    """The processes ``pid`` started, with their command lines (Linux's /proc)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="children are found in Linux's /proc")
async def test_load_whose_ledger_cannot_start_ends_with_a_clear_error(tmp_path):
    """`ivr load` whose `ivr ledger` exits before it is online (its file cannot be made): exit 1, no traceback.

    Found with a RabbitMQ node killed while `ivr load` started its relay: the same path, a traceback before.
    """
    args = ["--calls", "10", "--ledger-db", "/proc/no-such-dir/ledger.db", "--workdir", str(tmp_path / "run")]
    status, out = await ivr("load", *args, "--no-progress")
    assert status == 1, out
    assert "Error: the run stopped: `ivr ledger` exited with status 1 before it was online" in out
    assert "Traceback" not in out


async def test_load_ends_naming_its_ledger_when_the_ledger_dies(private_broker):
    """SIGKILL to `ivr load`'s ledger mid-run: the load exits 1 at once, naming the ledger and its last log line."""
    argv = ["load", "--calls", "100000", "--rate", "100", "--customers", "40", "--no-progress"]
    load = await asyncio.create_subprocess_exec(
        *IVR,
        *argv,
        "--broker",
        private_broker.config.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            children: dict[int, str] = {}
            while not any(" relay" in cmd for cmd in children.values()):  # the ledger is online before the relay
                assert load.returncode is None, "ivr load ended before it started its relay"
                await asyncio.sleep(0.1)
                children = _children(load.pid)
        [ledger] = [pid for pid, cmd in children.items() if " ledger " in cmd and " run" in cmd]
        await asyncio.sleep(1)  # mid-run: calls are being made
        os.kill(ledger, signal.SIGKILL)
        async with asyncio.timeout(WAIT):
            out, err = await load.communicate()
    finally:
        await end_process(load, signal.SIGKILL)
    text = err.decode(errors="replace")
    assert load.returncode == 1, text
    assert "Error: the run stopped: `ivr ledger` was killed by SIGKILL; the last line of its log: " in text
    assert "Traceback" not in text
    assert out == b""  # no report for a run that did not finish


# -- ivr events and SIGTERM -----------------------------------------------------------------


async def test_events_stops_on_sigterm_while_nothing_arrives(private_broker):
    """`ivr events` waiting on a quiet bus ends at once, with status 0, on SIGTERM."""
    config = private_broker.config
    async with MqttBus(config=config) as status:
        await status.wait_connected()
        await status.publish("ivr/v2/status/quiet-ivr", ONLINE, retain=True)
    events = await asyncio.create_subprocess_exec(
        *IVR, "events", "--broker", config.url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        assert events.stdout is not None
        async with asyncio.timeout(WAIT):
            line = await events.stdout.readline()  # the retained status: it is subscribed, and idle from now on
        assert line.decode().strip() == "ivr/v2/status/quiet-ivr online"
        events.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            rest, _ = await events.communicate()
    finally:
        await end_process(events, signal.SIGKILL)
    assert events.returncode == 0, rest.decode(errors="replace")
    assert b"Traceback" not in rest


# -- a ledger file that cannot be written ---------------------------------------------------


async def test_a_ledger_file_on_a_path_that_cannot_be_made_is_a_clear_error(private_broker, tmp_path):
    """A folder that is a file, a file in /proc: exit 1 with what is wrong, no traceback."""
    (tmp_path / "a-file").write_text("not a folder")
    for db, says in [
        (tmp_path / "a-file" / "ledger.db", "cannot make the folder of the ledger file"),
        (Path("/proc/ivr-ledger.db"), "the ledger file /proc/ivr-ledger.db cannot be used: unable to open"),
    ]:
        status, out = await ivr("ledger", "--db", str(db), "run", "--broker", private_broker.config.url)
        assert status == 1, out
        assert says in out
        assert "Traceback" not in out


def mount(*args: str) -> int:
    """Run the system's ``mount`` (or ``umount``) with ``args``; its exit status."""
    return subprocess.run(args, check=False).returncode  # noqa: S603 - our own arguments, the system's mount


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    """A tmpfs of ``size`` mounted at ``where`` for the block (root only: else the test fails, saying so)."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (make test runs as root in CI)")
    if mount("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)):
        pytest.fail("a tmpfs cannot be mounted here: the full-disk test needs one")
    try:
        yield where
    finally:
        assert mount("umount", "-l", str(where)) == 0


async def _ledger_file(db: Path) -> None:
    """A ledger file with the default world's opening balances, as a first start makes it."""
    store = await SqliteLedgerStore.open(db)
    try:
        await store.load_opening({"K-ANNA-STD": 5})
    finally:
        await store.close()


async def test_a_read_only_ledger_file_is_a_clear_error(private_broker, tmp_path):
    """A ledger file on a read-only file system: `run` and `balances` exit 1 saying so, no traceback."""
    with tmpfs(tmp_path / "ro", "1m") as folder:
        db = folder / "ledger.db"
        await _ledger_file(db)
        assert mount("mount", "-o", "remount,ro", str(folder)) == 0
        for args in (["run", "--broker", private_broker.config.url], ["balances"]):
            status, out = await ivr("ledger", "--db", str(db), *args)
            assert status == 1, out
            assert f"Error: the ledger file {db} cannot be used: " in out
            assert "Traceback" not in out


async def test_a_full_disk_stops_the_ledger_with_a_clear_error_and_loses_nothing(private_broker, tmp_path):
    """The disk fills under a running ledger: it exits 1 saying so; with room again, the ticket is deducted."""
    config = private_broker.config
    with tmpfs(tmp_path / "small", "1m") as folder:
        ledger = LedgerProcess(
            config=config,
            db=folder / "ledger.db",
            fixture=DEFAULT_WORLD_PATH,
            client_id="full-ledger",
            source="full-ledger",
            log_file=tmp_path / "ledger.log",
        )
        await ledger.start()
        filler = folder / "filler"
        with contextlib.suppress(OSError), filler.open("wb", buffering=0) as fill:  # written until the disk is full
            while True:
                fill.write(b"\0" * 4096)
        try:
            async with (
                collector(config, "ivr/v2/ledger/#", client_id="full-watch") as verdicts,
                MqttBus(config=config) as feeder,
            ):
                await feeder.wait_connected()
                await feeder.publish("ivr/v2/ticket/created/0", ticket_event("2999020").to_json())
                async with asyncio.timeout(WAIT):
                    ended = await ledger.ended()
                assert "`ivr ledger` exited with status 1" in ended
                assert "Error: the ledger file" in ended
                assert "database or disk is full" in ended
                assert "Traceback" not in (tmp_path / "ledger.log").read_text()
                filler.unlink()
                await ledger.restart()  # the ticket was never acknowledged: the broker sends it again
                async with asyncio.timeout(WAIT):
                    while not verdicts:
                        await asyncio.sleep(0.05)
        finally:
            await ledger.stop()
    [[verdict]] = verdicts.values()
    assert (verdict["type"], verdict["data"]["ticket"]) == ("ivr.ledger.incident_deducted", "2999020")
    assert json.loads(json.dumps(verdict))["data"]["balance_after"] == 4
