#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (no browser can be downloaded here). Install it when
# it is missing and we are root; otherwise the browser tests skip, saying why.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  echo "chromium: $(command -v chromium || echo /usr/bin/chromium) available"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium: installing Debian's package"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium: apt-get install failed; the browser tests will be skipped" >&2
  exit 0
fi
echo "chromium: not installed and cannot install (not root): the browser tests will be skipped" >&2
exit 0
