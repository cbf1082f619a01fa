#!/usr/bin/env bash
# make bench: starts phalanx on scripts/bench/phalanx.json (2 workers, access log
# off, a static route) on a free loopback port, then prints
#   - wrk -t1 -c64 keep-alive: requests/s and latency percentiles
#   - ab -k (keep-alive) and ab without keep-alive: requests/s, failed requests
#   - each worker's RSS before and after 1,000,000 keep-alive requests, and the master's
#   - the workers' RSS per idle keep-alive connection (5,000 connections, one request each)
# Every run is bounded in count or time and goes to 127.0.0.1 only.
# For phalanx side by side with nginx, HAProxy and the ceiling responder:
#   ../shared/bench/compare.py --static http://127.0.0.1:PORT/   (while phalanx runs)
set -euo pipefail
BIN=${1:-build/phalanx}
DURATION=${BENCH_SECONDS:-5}
MEMORY_REQUESTS=${BENCH_MEMORY_REQUESTS:-1000000}
IDLE_CONNECTIONS=${BENCH_IDLE_CONNECTIONS:-5000}
work=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed "s/127.0.0.1:18080/127.0.0.1:$port/" scripts/bench/phalanx.json > "$work/phalanx.json"
# In a session of its own, as compare.py starts nginx and HAProxy: with the
# kernel's autogroup scheduling, the session shares CPU as one (README, Benchmarking).
setsid "$BIN" -c "$work/phalanx.json" 2> "$work/phalanx.log" &
master=$!
cleanup() { kill -TERM "$master" 2>/dev/null || true; wait "$master" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
url="http://127.0.0.1:$port/"
for _ in $(seq 50); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
workers() { pgrep -P "$master" | sort -n; }

echo "== phalanx $("$BIN" -v | cut -d' ' -f2) on $url, $(workers | wc -l) workers, $(nproc) cores"
declare -A idle
for w in $(workers); do idle[$w]=$(rss_kb "$w"); done
echo "idle RSS: workers $(for w in $(workers); do printf '%s kB ' "${idle[$w]}"; done)master $(rss_kb "$master") kB"
echo "== wrk -t1 -c64 -d${DURATION}s (keep-alive)"
wrk -t1 -c64 -d"${DURATION}s" --latency "$url" | grep -E "Requests/sec|Latency|50%|75%|90%|99%|Socket errors|Non-2xx"
echo "== ab -k -c64 -n200000 (keep-alive, HTTP/1.0)"
ab -q -k -c64 -n200000 "$url" | grep -E "Requests per second|Failed requests|Time per request.*mean\)|99%"
echo "== ab -c16 -n20000 (a connection per request)"
ab -q -c16 -n20000 "$url" | grep -E "Requests per second|Failed requests|Time per request.*mean\)|99%"

echo "== RSS across $MEMORY_REQUESTS keep-alive requests (ab -k -c64)"
declare -A before
for w in $(workers); do before[$w]=$(rss_kb "$w"); done
ab -q -k -c64 -n"$MEMORY_REQUESTS" "$url" | grep -E "Complete requests|Failed requests"
for w in $(workers); do
  after=$(rss_kb "$w")
  echo "worker pid $w: RSS idle ${idle[$w]} kB, ${before[$w]} kB -> $after kB across the run (delta $((after - before[$w])) kB, $((after - idle[$w])) kB from idle)"
done
echo "master pid $master: RSS $(rss_kb "$master") kB"

echo "== RSS of $IDLE_CONNECTIONS idle keep-alive connections (one request each, then idle)"
/usr/bin/python3 - "$port" "$IDLE_CONNECTIONS" $(workers) <<'PY'
import resource, socket, sys, time
port, n, pids = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
# Connections are spread by a hash: keep under what one worker may open.
worker_fds = min(int(line.split()[3]) for p in pids for line in open(f"/proc/{p}/limits")
                 if line.startswith("Max open files"))
n = min(n, hard - 64, worker_fds - 64)
def rss_kb():
    return sum(int(line.split()[1]) for p in pids for line in open(f"/proc/{p}/status")
               if line.startswith("VmRSS:"))
request = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
before, conns = rss_kb(), []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(request)
    s.recv(4096)
    conns.append(s)
time.sleep(1)
after = rss_kb()
print(f"workers' RSS {before} kB -> {after} kB: {(after - before) / n:.2f} kB per idle connection")
for s in conns:
    s.close()
PY
