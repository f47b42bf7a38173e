#!/usr/bin/env bash
# The demo: install the daemon in .venv, start a private mosquitto on a free local port, and run
# the daemon on the bundled sample video of real garments (59 s) while a subscriber prints every message.
# Usage: bash deploy/demo.sh [extra `edge-classifier run` arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/dev-setup.sh "mosquitto mosquitto-clients"

workdir=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$workdir/mosquitto.conf"
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto" -c "$workdir/mosquitto.conf" 2> "$workdir/mosquitto.log" &
broker=$!
subscriber=""
cleanup() { kill $subscriber "$broker" 2>/dev/null || true; rm -rf "$workdir"; }
trap cleanup EXIT
# Wait for mosquitto to say it is running before anything connects to it.
if ! timeout 10 bash -c "until grep -q ' running' '$workdir/mosquitto.log'; do sleep 0.1; done"; then
    echo "error: mosquitto did not start: $(tail -n 1 "$workdir/mosquitto.log")" >&2
    exit 1
fi

echo "== broker on 127.0.0.1:$port; messages under edge-classifier/demo/ follow"
mosquitto_sub -p "$port" -v -t 'edge-classifier/demo/#' &
subscriber=$!
status=0
.venv/bin/edge-classifier run --source models/sample/garments.mp4 --device-id demo \
    --set mqtt.host=127.0.0.1 --set "mqtt.port=$port" --set mqtt.metrics_interval_s=5 "$@" || status=$?
echo "== done: the video ended; the daemon published 'offline' and exited with status $status"
exit "$status"
