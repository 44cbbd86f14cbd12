#!/usr/bin/env bash
# ensure-package.sh PACKAGE COMMAND WHAT: install Debian's PACKAGE when COMMAND is missing and we
# are root (nothing else can be downloaded here); otherwise WHAT skips, saying why.
# Used for chromium (the browser tests) and graphviz (the SVG diagram tests).
set -u
package=$1 command=$2 what=$3
if command -v "$command" >/dev/null 2>&1 || [ -x "/usr/bin/$command" ]; then
  echo "$package: $(command -v "$command" || echo "/usr/bin/$command") available"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "$package: installing Debian's package"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null) \
    || echo "$package: apt-get install failed; $what will fail, saying so" >&2
  exit 0
fi
echo "$package: not installed and cannot install (not root): $what will fail, saying so" >&2
exit 0
