#!/usr/bin/env bash
# Validate docs/asyncapi.yaml with the official AsyncAPI CLI (npm @asyncapi/cli), as `make check`
# does: any error or warning fails. The CLI is installed on first use into .tools/ (about a minute
# and 300 MB, which is why this is `make check`'s and not every `make test`'s); without npm it
# fails saying how to get it, never skips.
set -euo pipefail

VERSION=6.2.0
HERE=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$HERE/.tools/asyncapi-cli-$VERSION"
CLI="$TOOLS/node_modules/.bin/asyncapi"

if [ ! -x "$CLI" ]; then
    if ! command -v npm >/dev/null; then
        echo "asyncapi-validate: npm not found; install Node.js 20+ and npm (apt-get install nodejs npm) to validate docs/asyncapi.yaml" >&2
        exit 1
    fi
    echo "asyncapi-validate: installing @asyncapi/cli@$VERSION into $TOOLS" >&2
    if ! npm install --no-audit --no-fund --loglevel=error --prefix "$TOOLS" "@asyncapi/cli@$VERSION" >&2; then
        echo "asyncapi-validate: npm could not install @asyncapi/cli@$VERSION (is the npm registry reachable?)" >&2
        exit 1
    fi
fi

# The CLI sends usage metrics unless its config file says not to: keep that file in .tools, off.
export ASYNCAPI_METRICS_CONFIG_PATH="$TOOLS/analytics.json"
[ -f "$ASYNCAPI_METRICS_CONFIG_PATH" ] || echo '{"analyticsEnabled":"false","infoMessageShown":"true"}' > "$ASYNCAPI_METRICS_CONFIG_PATH"
export SUPPRESS_NO_CONFIG_WARNING=1

cd "$HERE"
exec "$CLI" validate docs/asyncapi.yaml --fail-severity warn
