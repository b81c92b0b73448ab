# Shared by the OCSP load benchmarks (bench-ocsp.sh, bench-ocsp-default.sh):
# source it after setting WORK and DURATION. wrk -t2 -c64 with a random GET
# per request, nginx serving one static file, and each server's CPU time
# read from /proc around every run; 127.0.0.1 only.

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
	apt-get install -y wrk nginx-light >/dev/null
fi

# random.lua: every request a random line of the paths file, each request
# formatted once at start so that wrk's per-request Lua work is a lookup.
cat >"$WORK/random.lua" <<'LUA'
local reqs = {}
init = function(args)
	for line in io.lines(args[1]) do reqs[#reqs + 1] = wrk.format("GET", line) end
	math.randomseed(os.time() + #tostring({}))
end
request = function() return reqs[math.random(#reqs)] end
LUA

pids=()
stop_all() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
	nginx -c "$WORK/nginx/nginx.conf" -s stop 2>/dev/null || true
	sleep 1
}
trap stop_all EXIT

# cpu PIDS: the summed utime+stime, in clock ticks, of the processes.
cpu() {
	local t=0 p
	for p in $1; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}

# load NAME URL PATHS PIDS WRAP: one wrk run, one result line:
# NAME req/s p50 p99 CPU-us/req [NON-2XX n] [socket errors].
load() {
	local name=$1 url=$2 paths=$3 spids=$4 wrap=$5 before after out
	before=$(cpu "$spids")
	out=$($wrap wrk -t2 -c64 -d"$DURATION" --latency -s "$WORK/random.lua" "$url" -- "$paths")
	after=$(cpu "$spids")
	echo "$out" | awk -v name="$name" -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
		/^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2}
		/^Requests\/sec/ {rps = $2}
		/Non-2xx/ {bad = $NF} /Socket errors/ {err = $0}
		/requests in/ {n = $1}
		END {
			printf "%-16s %10.0f req/s  p50 %8s  p99 %8s  server CPU %6.1f us/req%s%s\n",
				name, rps, p50, p99, ticks / hz * 1e6 / n, bad ? "  NON-2XX " bad : "", err ? "  " err : ""
		}'
}

# start_nginx ROOT FILE PORT WORKERS WRAP: nginx answering every path with
# ROOT/FILE as application/ocsp-response; sets nginx_pids to its workers.
start_nginx() {
	local root=$1 file=$2 port=$3 workers=$4 wrap=$5
	mkdir -p "$WORK/nginx"
	cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes $workers;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	client_body_temp_path $WORK/nginx;
	proxy_temp_path $WORK/nginx;
	fastcgi_temp_path $WORK/nginx;
	uwsgi_temp_path $WORK/nginx;
	scgi_temp_path $WORK/nginx;
	server {
		listen 127.0.0.1:$port;
		root $root;
		default_type application/ocsp-response;
		location / { try_files /$file =404; }
	}
}
CONF
	$wrap nginx -c "$WORK/nginx/nginx.conf"
	sleep 1
	nginx_pids="$(pgrep -f "nginx: worker process" | tr '\n' ' ')"
}
