"""The throwaway broker: loopback only, restartable on its port, a clear error when there is none."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from ivr.bus import broker as broker_module
from ivr.bus.broker import (
    LOOPBACK,
    BrokerNotAvailableError,
    EmbeddedBroker,
    embedded_broker,
    free_port,
    generated_config,
    local_plugin,
    restart_broker,
    rewrite_config,
)
from ivr.bus.mqtt import Backoff, MqttBus

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
WAIT = 20.0


def test_generated_config_listens_on_loopback_only():
    """The private broker's only listener is bound to 127.0.0.1, with nodelay and no persistence."""
    text = generated_config(port=12345)
    assert [line for line in text.splitlines() if line.startswith("listener")] == [f"listener 12345 {LOOPBACK}"]
    assert "set_tcp_nodelay true" in text
    assert "persistence false" in text


def test_a_free_port_lies_below_the_range_outgoing_connections_take():
    """A private broker's port is one no outgoing connection can be given while the broker restarts."""
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(port < first_ephemeral for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, port))
            sock.listen()


def test_rewrite_moves_only_listener_persistence_and_logs(needs_mosquitto, tmp_path):
    """The deployment config keeps its auth and ACL settings; only where it listens, stores and finds files changes."""
    original = DEPLOY_CONF.read_text()
    text = rewrite_config(original, base_dir=DEPLOY_CONF.parent, port=23456, persistence_dir=tmp_path)
    lines = set(text.splitlines())
    assert f"listener 23456 {LOOPBACK}" in lines
    assert f"persistence_location {tmp_path}/" in lines
    assert f"plugin_opt_config_file {DEPLOY_CONF.parent / 'dynamic-security.json'}" in lines
    assert f"plugin {local_plugin('/usr/lib/mosquitto_dynamic_security.so')}" in lines
    assert f"include_dir {DEPLOY_CONF.parent / 'conf.d'}" in lines
    kept = {"allow_anonymous false", "set_tcp_nodelay true", "persistence true", "persistent_client_expiration 7d"}
    assert kept <= lines
    changed = {
        line
        for line in set(original.splitlines()) - lines
        if not line.startswith(("listener", "persistence_location", "plugin", "log_dest", "include_dir"))
    }
    assert changed == set()


def test_rewrite_refuses_a_plugin_this_machine_lacks(tmp_path):
    """A plugin found neither where the config says nor in this machine's library directories: a clear error."""
    with pytest.raises(ValueError, match=r"no-such-plugin\.so is not installed"):
        rewrite_config(
            "listener 1883\nplugin /usr/lib/no-such-plugin.so\n", base_dir=tmp_path, port=1, persistence_dir=tmp_path
        )


def test_rewrite_refuses_several_listeners(tmp_path):
    """A config with two listeners is ambiguous to move: refused."""
    with pytest.raises(ValueError, match="exactly one listener"):
        rewrite_config("listener 1883\nlistener 8883\n", base_dir=tmp_path, port=1, persistence_dir=tmp_path)


async def test_no_broker_at_all_is_a_clear_error(monkeypatch):
    """Without mosquitto and without amqtt, starting says what to install."""
    monkeypatch.setattr(broker_module, "find_mosquitto", lambda: None)

    def no_amqtt(name):
        raise ImportError(name)

    monkeypatch.setattr(broker_module.importlib, "import_module", no_amqtt)
    with pytest.raises(BrokerNotAvailableError, match="install mosquitto"):
        async with embedded_broker():
            pass


async def test_restart_comes_back_on_the_same_port(needs_mosquitto):
    """restart_broker() brings the broker back where clients expect it, and they reconnect."""
    async with embedded_broker() as config:
        assert config.host == LOOPBACK
        async with MqttBus(config=config, backoff=Backoff(initial=0.02, maximum=0.2)) as bus:
            async with asyncio.timeout(WAIT):
                await bus.wait_connected()
            first_connection_lost = bus._lost
            await restart_broker(config)
            async with asyncio.timeout(WAIT):
                await first_connection_lost
                await bus.wait_connected()
            await bus.publish("ivr-test/restart", b"still here")
            assert bus.connections == 2


async def test_persistence_keeps_a_session_across_a_restart(needs_mosquitto, tmp_path, inbox):
    """With a persistence directory, a message queued for an offline session survives a restart."""
    session = {"client_id": "ivr-test-persist", "persistent": True, "subscriptions": ["t/#"]}
    async with EmbeddedBroker(persistence_dir=tmp_path / "db") as broker:
        async with MqttBus(config=broker.config, **session) as sub:
            async with asyncio.timeout(WAIT):
                await sub.wait_connected()
        async with MqttBus(config=broker.config) as pub:
            async with asyncio.timeout(WAIT):
                await pub.wait_connected()
            await pub.publish("t/x", b"queued while away")
        await broker.restart()
        async with MqttBus(config=broker.config, **session) as sub:
            [delivery] = await inbox(sub).count(1)
    assert delivery.payload == b"queued while away"
