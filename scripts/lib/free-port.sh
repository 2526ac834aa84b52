# shellcheck shell=bash
# scripts/lib/free-port.sh — fr_free_port, shared by the benchmarks and scripts that start
# workers on ports of their own. Sourced, never run.

# fr_free_port: a TCP port on 127.0.0.1 that nothing listens on now, as the kernel picks one
# for a bind to port 0. Another process may take it before the caller binds it: callers start
# their worker at once, and a worker that cannot bind its web port exits with a clear error.
fr_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
