"""Where the broker is: ``mqtt[s]://[user:pass@]host:port[?version=5&ca=FILE&cert=FILE&key=FILE]``.

One URL names the broker, the credentials, TLS and the protocol version for every process (IVR,
ledger, ``ivr events``), from a flag or the ``IVR_BROKER`` variable, so a deployment changes one
variable and a process hands its children the whole of it. ``mqtts://`` is TLS, verified
against ``ca`` (else the system's trust store), with an optional client certificate. The
password is a credential: it is kept out of ``repr``, ``str`` and every error message, so a
config object can be logged as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, quote, unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_PORT",
    "ENV_VAR",
    "MQTT5",
    "MQTT311",
    "MQTT_VERSIONS",
    "TLS_PORT",
    "BrokerConfig",
    "BrokerUrlError",
    "broker_from_env",
    "parse_broker_url",
]

#: The variable every ``ivr`` process reads the broker from.
ENV_VAR: Final = "IVR_BROKER"
DEFAULT_PORT: Final = 1883
TLS_PORT: Final = 8883
#: Loopback by default: nothing leaves the machine unless a deployment says so.
DEFAULT_BROKER_URL: Final = f"mqtt://127.0.0.1:{DEFAULT_PORT}"
_MAX_PORT: Final = 65535
MQTT311: Final = "3.1.1"
MQTT5: Final = "5"
MQTT_VERSIONS: Final = (MQTT311, MQTT5)
_FILES: Final = ("ca", "cert", "key")


class BrokerUrlError(ValueError):
    """A broker URL that cannot be used; the message never contains the password."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    """An MQTT broker's address and, optionally, the credentials to log in with."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: ``mqtts://``: TLS, verified against ``ca_file`` (the system's trust store when ``None``).
    tls: bool = False
    ca_file: Path | None = None
    #: A client certificate (PEM) and its key, for a broker that asks for one.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: The protocol spoken: ``"3.1.1"`` or ``"5"``.
    mqtt_version: str = MQTT311

    def __post_init__(self) -> None:
        """Refuse an empty host or a port outside 1-65535 here, not at connect time."""
        if not self.host:
            msg = "a broker needs a host"
            raise BrokerUrlError(msg)
        if not 0 < self.port <= _MAX_PORT:
            msg = f"broker port {self.port} is not in 1-{_MAX_PORT}"
            raise BrokerUrlError(msg)
        if self.password is not None and self.username is None:
            msg = "a broker password needs a username"
            raise BrokerUrlError(msg)
        if self.mqtt_version not in MQTT_VERSIONS:
            msg = f"MQTT version {self.mqtt_version!r} is not one of {', '.join(MQTT_VERSIONS)}"
            raise BrokerUrlError(msg)
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            msg = "a CA file or client certificate needs TLS: an mqtts:// broker URL"
            raise BrokerUrlError(msg)
        if self.key_file is not None and self.cert_file is None:
            msg = "a client key needs its certificate"
            raise BrokerUrlError(msg)

    @property
    def url(self) -> str:
        """The URL with the password replaced by ``***``: safe for logs."""
        return self._url(redact=True)

    def secret_url(self) -> str:
        """The full URL, password included: for handing to another process, never for a log."""
        return self._url(redact=False)

    def _url(self, *, redact: bool) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + ("***" if redact else quote(self.password, safe=""))
            auth += "@"
        files = {"ca": self.ca_file, "cert": self.cert_file, "key": self.key_file}
        query = [f"{name}={quote(str(path))}" for name, path in files.items() if path is not None]
        if self.mqtt_version != MQTT311:
            query.insert(0, f"version={self.mqtt_version}")
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{auth}{host}:{self.port}" + ("?" + "&".join(query) if query else "")

    def __str__(self) -> str:
        """The redacted URL."""
        return self.url


def _redacted(url: str) -> str:
    """``url`` with anything between ``://`` and ``@`` masked, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def parse_broker_url(url: str) -> BrokerConfig:
    """Parse ``mqtt[s]://[user[:password]@]host[:port][?version=&ca=&cert=&key=]``; parts may be percent-encoded."""
    shown = _redacted(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        msg = f"not a broker URL: {shown!r} ({exc})"
        raise BrokerUrlError(msg) from None
    if parts.scheme not in ("mqtt", "mqtts"):
        msg = f"a broker URL starts with mqtt:// or mqtts://, not {shown!r}"
        raise BrokerUrlError(msg)
    if parts.path not in ("", "/") or parts.fragment:
        msg = f"a broker URL has no path or fragment: {shown!r}"
        raise BrokerUrlError(msg)
    unknown = sorted(set(query) - {"version", *_FILES})
    if unknown or any(len(values) != 1 for values in query.values()):
        msg = f"a broker URL's query takes version, ca, cert and key, once each, not {shown!r}"
        raise BrokerUrlError(msg)
    if not parts.hostname:
        msg = f"a broker URL needs a host: {shown!r}"
        raise BrokerUrlError(msg)
    tls = parts.scheme == "mqtts"
    files = {name: Path(query[name][0]) for name in _FILES if name in query}
    return BrokerConfig(
        host=parts.hostname,
        port=(TLS_PORT if tls else DEFAULT_PORT) if port is None else port,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        tls=tls,
        ca_file=files.get("ca"),
        cert_file=files.get("cert"),
        key_file=files.get("key"),
        mqtt_version=query.get("version", [MQTT311])[0],
    )


def broker_from_env(env: Mapping[str, str] | None = None, *, default: str = DEFAULT_BROKER_URL) -> BrokerConfig:
    """The broker named by ``IVR_BROKER`` in ``env`` (the process environment by default)."""
    source = os.environ if env is None else env
    return parse_broker_url(source.get(ENV_VAR) or default)
