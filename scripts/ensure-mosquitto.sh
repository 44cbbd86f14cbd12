#!/usr/bin/env bash
# Make sure the tests can have a real Mosquitto: one answering on 127.0.0.1:1883, or the
# `mosquitto` binary so the tests start their own on a free loopback port. Installs Debian's
# package when it is missing and we are root; otherwise says why broker tests will be skipped.
set -u
if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  exec 3>&- ; echo "mosquitto: a broker answers on 127.0.0.1:1883"
fi
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  echo "mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto) available"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "mosquitto: installing Debian's package"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null) \
    || { echo "mosquitto: apt-get install failed" >&2; exit 1; }
  # Debian starts no service in a container; the tests start their own broker on a free port.
  exit 0
fi
echo "mosquitto: not installed and cannot install (not root): broker tests will be skipped" >&2
exit 0
