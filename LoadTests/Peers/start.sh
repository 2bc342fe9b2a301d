#!/usr/bin/env bash
# Starts one load-test peer in the foreground: bash LoadTests/Peers/start.sh NAME PORT
# NAME: node-ws | python-websockets | socketify | hummingbird. The peer prints a line containing
# "listening on 127.0.0.1:PORT" once it accepts connections, and exits on SIGTERM/SIGINT. Exit 2: usage, or the
# peer's runtime is missing. hummingbird is built in release first (several minutes) when its binary is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}

if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 node-ws|python-websockets|socketify|hummingbird PORT" >&2
    exit 2
fi
name=$1 port=$2
missing() { echo "start.sh: cannot start peer $name: $*" >&2; exit 2; }

case "$name" in
node-ws)
    command -v node >/dev/null || missing "node is not installed (apt-get install node-ws)"
    [ -f /usr/share/nodejs/ws/index.js ] || missing "/usr/share/nodejs/ws is missing (apt-get install node-ws)"
    exec node "$here/node-ws.js" "$port"
    ;;
python-websockets)
    "$PYTHON" -c 'import websockets.asyncio.server' 2>/dev/null \
        || missing "Python package websockets (>= 14) is missing (pip install websockets)"
    exec "$PYTHON" "$here/python-websockets.py" "$port"
    ;;
socketify)
    "$PYTHON" -c 'import socketify' 2>/dev/null \
        || missing "socketify does not import (pip install socketify; it needs apt-get install libuv1)"
    exec "$PYTHON" "$here/socketify-peer.py" "$port"
    ;;
hummingbird)
    pkg=$here/hummingbird-peer
    bin=$pkg/.build/release/hummingbird-peer
    if [ ! -x "$bin" ]; then
        command -v swift >/dev/null || missing "swift is not installed and $bin is not built"
        echo "start.sh: building the hummingbird peer in release (several minutes)" >&2
        (cd "$pkg" && swift build -c release --product hummingbird-peer >&2)
    fi
    exec "$bin" "$port"
    ;;
*)
    echo "start.sh: unknown peer $name (node-ws, python-websockets, socketify, hummingbird)" >&2
    exit 2
    ;;
esac
