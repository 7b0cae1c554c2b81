#!/usr/bin/env bash
# start-idp.sh - start the loopback IdP in the background and wait until it serves discovery.
# Usage:  source start-idp.sh   (exports IDP_ISSUER, IDP_PID; or run it: prints "ISSUER PID")
# Env:    IDP_DIR (default: this script's dir), IDP_PORT (default 0 = ephemeral), IDP_LOG_FILE, IDP_TIMEOUT (s, default 30)
#         + any IDP_* variable understood by server.js (IDP_SHAPE, IDP_PATH_PREFIX, IDP_DISCOVERY... see its header)
set -euo pipefail
IDP_DIR="${IDP_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
IDP_LOG_FILE="${IDP_LOG_FILE:-${TMPDIR:-/tmp}/idp-$$.log}"
export IDP_READY_FILE="${IDP_READY_FILE:-${TMPDIR:-/tmp}/idp-$$.ready.json}"
rm -f "$IDP_READY_FILE"
[ -d "$IDP_DIR/node_modules/oidc-provider" ] || (cd "$IDP_DIR" && npm ci --no-audit --no-fund --loglevel=error)

IDP_PORT="${IDP_PORT:-0}" node "$IDP_DIR/server.js" >"$IDP_LOG_FILE" 2>&1 &
IDP_PID=$!
deadline=$(( $(date +%s) + ${IDP_TIMEOUT:-30} ))
until [ -s "$IDP_READY_FILE" ]; do
  if ! kill -0 "$IDP_PID" 2>/dev/null; then echo "IdP died during startup:" >&2; cat "$IDP_LOG_FILE" >&2; exit 1; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then echo "IdP not ready in time" >&2; kill "$IDP_PID"; cat "$IDP_LOG_FILE" >&2; exit 1; fi
  sleep 0.05
done
IDP_ISSUER="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuer"])' "$IDP_READY_FILE")"
# discovery URL: OpenID discovery, or the RFC 8414 document when IDP_DISCOVERY=off
IDP_DISCOVERY_URL="$(python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); print(i["discovery"] or i["oauth_discovery"])' "$IDP_READY_FILE")"
# belt and braces: discovery must answer 200 before we hand over
curl -fsS --retry 20 --retry-connrefused --retry-delay 0 -o /dev/null "$IDP_DISCOVERY_URL"
export IDP_ISSUER IDP_PID IDP_LOG_FILE
echo "$IDP_ISSUER $IDP_PID"
