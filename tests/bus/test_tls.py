"""The bus over TLS (``mqtts://``), against a Mosquitto TLS listener whose certificates each test makes (trustme)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sys

import pytest
import trustme

from ivr.bus.base import BusRefusedError, BusUnavailableError
from ivr.bus.broker import EmbeddedBroker, ListenerTls, free_port
from ivr.bus.mqtt import MqttBus, probe
from ivr.bus.url import BrokerConfig
from tests.conftest import REPO

pytestmark = pytest.mark.broker

WAIT = 20.0
DEPLOY = REPO / "deploy" / "mosquitto"


@pytest.fixture
def ca():
    """A certificate authority of this test's own."""
    return trustme.CA()


def listener_tls(ca, tmp_path, *, require_client_certificate=False):
    """The broker's certificate for 127.0.0.1, signed by ``ca``, and the CA file, written to ``tmp_path``."""
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    server.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(ca_file)
    return ListenerTls(
        cert_file=cert, key_file=key, ca_file=ca_file, require_client_certificate=require_client_certificate
    )


async def test_events_cross_a_tls_broker(needs_mosquitto, ca, tmp_path):
    """mqtts:// verified by the broker's CA: a publish reaches a subscriber, and the URL says mqtts."""
    async with EmbeddedBroker(tls=listener_tls(ca, tmp_path)) as broker:
        config = broker.config
        async with MqttBus(config=config, subscriptions=["tls/#"]) as sub, MqttBus(config=config) as pub:
            async with asyncio.timeout(WAIT):
                await asyncio.gather(sub.wait_connected(), pub.wait_connected())
                await pub.publish_many([("tls/a", b"one"), ("tls/b", b"two")])
                received = sub.deliveries()
                got = [await anext(received), await anext(received)]
    assert [(d.topic, d.payload) for d in got] == [("tls/a", b"one"), ("tls/b", b"two")]
    assert config.url.startswith("mqtts://127.0.0.1:")


async def test_a_broker_the_ca_did_not_sign_is_refused(needs_mosquitto, ca, tmp_path):
    """Verified against another CA, the broker's certificate fails: a clear error, no connection."""
    other = trustme.CA()
    other_file = tmp_path / "other-ca.pem"
    other.cert_pem.write_to_path(other_file)
    async with EmbeddedBroker(tls=listener_tls(ca, tmp_path)) as broker:
        with pytest.raises(BusUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            await probe(dataclasses.replace(broker.config, ca_file=other_file), timeout=WAIT)


async def test_a_client_certificate_gets_in_where_the_broker_requires_one(needs_mosquitto, ca, tmp_path):
    """With require_certificate, a client without a certificate is turned away and one signed by the CA is let in."""
    client = ca.issue_cert("ivr-ledger")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(cert)
    client.private_key_pem.write_to_path(key)
    async with EmbeddedBroker(tls=listener_tls(ca, tmp_path, require_client_certificate=True)) as broker:
        with pytest.raises(BusUnavailableError):
            await probe(broker.config, timeout=WAIT)
        await probe(dataclasses.replace(broker.config, cert_file=cert, key_file=key), timeout=WAIT)


async def test_ivr_replay_scenarios_passes_over_mqtts(needs_mosquitto, ca, tmp_path):
    """`ivr replay scenarios --broker mqtts://... --broker-ca FILE`: every scenario passes through the TLS broker."""
    tls = listener_tls(ca, tmp_path)
    async with EmbeddedBroker(tls=tls) as broker:
        url = f"mqtts://127.0.0.1:{broker.config.port}"
        replay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr", "replay", "scenarios", "--broker", url, "--broker-ca", str(tls.ca_file),
            cwd=REPO, env={**os.environ, "NO_COLOR": "1"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(120):
            out, _ = await replay.communicate()
    text = out.decode(errors="replace")
    assert replay.returncode == 0, text
    assert "passed" in text
    assert "failed" not in text.replace("0 failed", "")


async def test_the_deployed_broker_offers_its_accounts_over_tls(needs_mosquitto, ca, tmp_path):
    """deploy/mosquitto with the TLS listener docker-compose.tls.yml mounts (moved to loopback): a login over mqtts."""
    base = tmp_path / "mosquitto"
    shutil.copytree(DEPLOY, base)
    tls = listener_tls(ca, tmp_path)
    port = free_port()
    listener = (DEPLOY / "tls" / "tls.conf").read_text()
    listener = listener.replace("listener 8883", f"listener {port} 127.0.0.1")
    listener = listener.replace("/mosquitto/certs/server.pem", str(tls.cert_file))
    listener = listener.replace("/mosquitto/certs/server.key", str(tls.key_file))
    (base / "conf.d" / "tls.conf").write_text(listener)
    async with EmbeddedBroker(base_config=base / "mosquitto.conf", persistence_dir=tmp_path / "data"):
        config = BrokerConfig(port=port, tls=True, ca_file=tls.ca_file, username="ivr", password="ivr-dev-only")  # noqa: S106 - the deployment's dev-only account
        await probe(config, client_id="ivr-console", timeout=WAIT)  # the one client id that account may use
        with pytest.raises(BusRefusedError):
            await probe(dataclasses.replace(config, password="wrong"), client_id="ivr-console", timeout=WAIT)  # noqa: S106 - a wrong one
