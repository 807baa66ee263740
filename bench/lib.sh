# Shared by the bench scripts (sourced, POSIX sh).

# start_registry WORK: starts the reference docker-registry on 127.0.0.1 at a
# free port with its storage under WORK/data, waits until it answers, and
# sets $host (127.0.0.1:PORT) and $reg_pid. Pair it with stop_registry in
# the script's exit trap.
start_registry() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    host="127.0.0.1:$port"
    cat >"$1/config.yml" <<EOC
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $1/data
http:
  addr: $host
EOC
    docker-registry serve "$1/config.yml" >"$1/registry.log" 2>&1 &
    reg_pid=$!
    i=0
    until curl -sf "http://$host/v2/" >/dev/null; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || { echo "error: docker-registry did not start" >&2; cat "$1/registry.log" >&2; exit 1; }
        sleep 0.1
    done
}

# stop_registry: stops the registry start_registry started, if any. `wait`
# returns the killed registry's 143: under set -e that would end an exit
# trap before its rm (leaving the work dir in /tmp) and the script with 143.
stop_registry() {
    if [ -n "${reg_pid:-}" ]; then
        kill "$reg_pid" 2>/dev/null || true
        wait "$reg_pid" 2>/dev/null || true
    fi
}
