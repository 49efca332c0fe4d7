#!/usr/bin/env bash
# Starts the compiled executable from an empty directory on a free port, checks that it answers
# GET /api/health with the envelope, then stops it with SIGTERM and checks it exits cleanly.
set -euo pipefail
exe=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
dir=$(mktemp -d)
cd "$dir"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"$exe" --port "$port" --data-dir "$dir/data" >"$dir/out.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$dir/out.log" && break
  sleep 0.1
done
body=$(curl -s "http://127.0.0.1:$port/api/health")
echo "$body" | grep -q '"success":true' || { echo "smoke: bad health answer: $body"; cat "$dir/out.log"; exit 1; }
echo "$body" | grep -q '"name"\|"proxy"' || { echo "smoke: health lacks services: $body"; exit 1; }
page=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 0 ] || { echo "smoke: exit code $rc after SIGTERM"; cat "$dir/out.log"; exit 1; }
[ -f "$dir/data/llama-async-proxy.db" ] || { echo "smoke: no database created"; exit 1; }
echo "smoke: compiled executable answered /api/health, / gave $page, and exited cleanly"
rm -rf "$dir"
