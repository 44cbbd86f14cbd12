"""Broker URLs: parsed from a flag or IVR_BROKER, with the password never shown."""

from __future__ import annotations

import pytest

from ivr.bus.url import DEFAULT_BROKER_URL, BrokerConfig, BrokerUrlError, broker_from_env, parse_broker_url


def test_host_and_port():
    """mqtt://host:port gives that host and port, and no credentials."""
    assert parse_broker_url("mqtt://127.0.0.1:2883") == BrokerConfig(host="127.0.0.1", port=2883)


def test_default_port():
    """Without a port the broker is on MQTT's 1883."""
    assert parse_broker_url("mqtt://localhost").port == 1883


def test_credentials_are_percent_decoded():
    """User and password may carry reserved characters, percent-encoded."""
    config = parse_broker_url("mqtt://ledger:p%40ss%3Aword@127.0.0.1:1883/")
    assert (config.username, config.password) == ("ledger", "p@ss:word")


def test_ipv6_host():
    """A bracketed IPv6 address is a host like any other."""
    assert parse_broker_url("mqtt://[::1]:1884") == BrokerConfig(host="::1", port=1884)


def test_password_is_never_shown():
    """Neither repr, str nor the url property carries the password."""
    config = parse_broker_url("mqtt://ivr:hunter2secret@127.0.0.1:1883")
    for text in (repr(config), str(config), config.url, f"{config}"):
        assert "hunter2secret" not in text
    assert str(config) == "mqtt://ivr:***@127.0.0.1:1883"


def test_secret_url_round_trips():
    """secret_url() is the one place the password comes back, and it parses to the same config."""
    config = BrokerConfig(host="127.0.0.1", port=1883, username="a b", password="p@ss/w:rd")  # noqa: S106 - a test value
    assert parse_broker_url(config.secret_url()) == config


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://ivr:hunter2secret@127.0.0.1:1883", "mqtt://"),
        ("mqtt://ivr:hunter2secret@127.0.0.1:99999", "not a broker URL"),
        ("mqtt://ivr:hunter2secret@127.0.0.1:1883/topic", "no path"),
        ("mqtt://ivr:hunter2secret@:1883", "needs a host"),
    ],
)
def test_bad_urls_are_refused_without_the_password(url, says):
    """A bad URL is refused with a reason, and the error never repeats the password."""
    with pytest.raises(BrokerUrlError, match=says) as caught:
        parse_broker_url(url)
    assert "hunter2secret" not in str(caught.value)


def test_from_env():
    """IVR_BROKER names the broker; without it the default is loopback 1883."""
    assert broker_from_env({"IVR_BROKER": "mqtt://127.0.0.1:1999"}).port == 1999
    assert broker_from_env({}) == parse_broker_url(DEFAULT_BROKER_URL)


def test_password_needs_a_username():
    """A password alone is a mistake, refused at construction."""
    with pytest.raises(BrokerUrlError, match="needs a username"):
        BrokerConfig(password="x")  # noqa: S106 - a test value


def test_mqtts_is_tls_on_8883_by_default():
    """mqtts:// is TLS, on MQTT's TLS port unless one is given, verified by the system's trust store."""
    config = parse_broker_url("mqtts://broker.example")
    assert (config.tls, config.port, config.ca_file) == (True, 8883, None)


def test_tls_files_and_version_round_trip_through_the_url():
    """CA, client certificate, key and MQTT version travel in the URL's query, so a child process gets them all."""
    url = "mqtts://ivr:pw@127.0.0.1:8884?version=5&ca=/etc/ivr/ca.pem&cert=/etc/ivr/me.pem&key=/etc/ivr/me%20key.pem"
    config = parse_broker_url(url)
    assert (config.mqtt_version, str(config.ca_file), str(config.key_file)) == (
        "5",
        "/etc/ivr/ca.pem",
        "/etc/ivr/me key.pem",
    )
    assert parse_broker_url(config.secret_url()) == config
    assert "pw" not in config.url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mqtt://127.0.0.1?ca=/tmp/ca.pem", "needs TLS"),
        ("mqtts://127.0.0.1?key=/tmp/k.pem", "needs its certificate"),
        ("mqtt://127.0.0.1?version=4", "MQTT version '4'"),
        ("mqtt://127.0.0.1?colour=blue", "takes version, ca, cert and key"),
        ("mqtt://127.0.0.1?version=5&version=3.1.1", "once each"),
    ],
)
def test_bad_tls_and_version_options_are_refused(url, says):
    """A CA without TLS, a key without its certificate, an unknown version or option: refused with the reason."""
    with pytest.raises(BrokerUrlError, match=says):
        parse_broker_url(url)
