#!/usr/bin/env bash
# `acm send` of one file over loopback TCP against a raw TCP copy of the same file in the same
# run (the nc-like baseline: sendfile into a socket, the socket written to a file), alone and
# with sha256sum on both ends; with the peak RSS of both `acm` processes.
#
#   cargo build --release -p acm-cli && bench/files.sh [MiB] [runs]
#
# Needs python3 (the raw copy) and GNU time (/usr/bin/time, for the peak RSS).
set -euo pipefail

MIB=${1:-1024}
RUNS=${2:-3}
ACM=${ACM:-$(dirname "$0")/../target/release/acm}
WORK=$(mktemp -d)
trap 'kill "${LISTENER:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Keys made for the secure runs stay in the scratch directory, one folder per end.
mkdir -p "$WORK/listen-config" "$WORK/send-config"

head -c "$((MIB << 20))" /dev/urandom >"$WORK/file.bin"
mkdir -p "$WORK/save"

# The raw copy: one process receives into a file, another sends the file with sendfile(2).
raw_copy() {
  python3 - "$WORK/file.bin" "$WORK/raw.bin" <<'EOF'
import os, socket, sys, threading
source, target = sys.argv[1], sys.argv[2]
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
def receive():
    conn, _ = server.accept()
    with open(target, "wb") as out:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            out.write(view[:n])
pid = os.fork()
if pid == 0:
    server.close()
    with socket.create_connection(("127.0.0.1", port)) as s, open(source, "rb") as f:
        s.sendfile(f)
    os._exit(0)
receive()
os.waitpid(pid, 0)
EOF
}

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

# `acm listen` with the flags given; sets LISTENER and ADDRESS.
start_listener() {
  rm -f "$WORK/listen.out"
  XDG_CONFIG_HOME="$WORK/listen-config" /usr/bin/time -f "%M" -o "$WORK/listen.rss" "$ACM" listen --listen tcp://127.0.0.1:0 \
    --service files --save-dir "$WORK/save" --overwrite "$@" >"$WORK/listen.out" 2>/dev/null &
  LISTENER=$!
  until grep -q "tcp://" "$WORK/listen.out" 2>/dev/null; do sleep 0.05; done
  ADDRESS=$(grep -o "tcp://[0-9.:]*" "$WORK/listen.out" | head -1)
}

stop_listener() {
  # GNU time's child is the listener: interrupt it, not time.
  kill -INT $(pgrep -P "$LISTENER") 2>/dev/null || true
  wait "$LISTENER" || true
}

# One `acm send` of the file; prints its seconds and the sender's peak RSS in KiB.
acm_send() {
  local start end
  rm -f "$WORK/save/file.bin"
  start=$(now)
  XDG_CONFIG_HOME="$WORK/send-config" /usr/bin/time -f "%M" -o "$WORK/send.rss" "$ACM" send \
    "$WORK/file.bin" --to "acm-listener@$ADDRESS" --service files "$@" >/dev/null 2>"$WORK/send.err" ||
    { cat "$WORK/send.err" >&2; exit 1; }
  end=$(now)
  cmp -s "$WORK/file.bin" "$WORK/save/file.bin" || { echo "the saved file differs" >&2; exit 1; }
  echo "$(elapsed "$start" "$end") $(tail -1 "$WORK/send.rss")"
}

echo "file: $MIB MiB, $RUNS runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
  start=$(now); raw_copy; end=$(now)
  raw=$(elapsed "$start" "$end")
  start=$(now)
  sha256sum "$WORK/file.bin" >/dev/null; raw_copy; sha256sum "$WORK/raw.bin" >/dev/null
  end=$(now)
  hashed=$(elapsed "$start" "$end")
  rm -f "$WORK/raw.bin"

  start_listener --insecure
  read -r plain plain_rss <<<"$(acm_send --insecure)"
  stop_listener
  plain_listen_rss=$(tail -1 "$WORK/listen.rss")

  start_listener --yes
  read -r secure secure_rss <<<"$(acm_send --yes)"
  stop_listener
  secure_listen_rss=$(tail -1 "$WORK/listen.rss")

  printf 'run %d: raw %.2fs, raw+sha256sum %.2fs | acm plain %.2fs (%.2fx raw, %.2fx raw+sha256sum), RSS send %d MiB listen %d MiB | acm secure %.2fs (%.2fx raw), RSS send %d MiB listen %d MiB\n' \
    "$run" "$raw" "$hashed" \
    "$plain" "$(echo "$plain / $raw" | bc -l)" "$(echo "$plain / $hashed" | bc -l)" \
    "$((plain_rss / 1024))" "$((plain_listen_rss / 1024))" \
    "$secure" "$(echo "$secure / $raw" | bc -l)" \
    "$((secure_rss / 1024))" "$((secure_listen_rss / 1024))"
done
