"""Where the broker is: ``mqtt://[user:pass@]host:port``, from a flag or the ``IVR_BROKER`` variable.

One URL names the broker and the credentials for every process (IVR, ledger, ``ivr events``), so
a deployment changes one variable. The password is a credential: it is kept out of ``repr``,
``str`` and every error message, so a config object can be logged as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_PORT",
    "ENV_VAR",
    "BrokerConfig",
    "BrokerUrlError",
    "broker_from_env",
    "parse_broker_url",
]

#: The variable every ``ivr`` process reads the broker from.
ENV_VAR: Final = "IVR_BROKER"
DEFAULT_PORT: Final = 1883
#: Loopback by default: nothing leaves the machine unless a deployment says so.
DEFAULT_BROKER_URL: Final = f"mqtt://127.0.0.1:{DEFAULT_PORT}"
_MAX_PORT: Final = 65535


class BrokerUrlError(ValueError):
    """A broker URL that cannot be used; the message never contains the password."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    """An MQTT broker's address and, optionally, the credentials to log in with."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)

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
        return f"mqtt://{auth}{host}:{self.port}"

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
    """Parse ``mqtt://[user[:password]@]host[:port]``; user and password may be percent-encoded."""
    shown = _redacted(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        msg = f"not a broker URL: {shown!r} ({exc})"
        raise BrokerUrlError(msg) from None
    if parts.scheme != "mqtt":
        msg = f"a broker URL starts with mqtt://, not {shown!r}"
        raise BrokerUrlError(msg)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        msg = f"a broker URL has no path, query or fragment: {shown!r}"
        raise BrokerUrlError(msg)
    if not parts.hostname:
        msg = f"a broker URL needs a host: {shown!r}"
        raise BrokerUrlError(msg)
    return BrokerConfig(
        host=parts.hostname,
        port=DEFAULT_PORT if port is None else port,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
    )


def broker_from_env(env: Mapping[str, str] | None = None, *, default: str = DEFAULT_BROKER_URL) -> BrokerConfig:
    """The broker named by ``IVR_BROKER`` in ``env`` (the process environment by default)."""
    source = os.environ if env is None else env
    return parse_broker_url(source.get(ENV_VAR) or default)
