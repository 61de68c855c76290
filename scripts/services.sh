# Servers the test suite needs, started on 127.0.0.1 and stopped again.
#   source scripts/services.sh && services_start   # exports SHIPYARD_TEST_*_URL,
#                                                  # SHIPYARD_TEST_CHROMIUM and
#                                                  # SHIPYARD_TEST_NGINX
#   services_stop
# (SHIPYARD_TEST_REDIS_URLS: two independent redis-servers, comma-separated.)
# Missing software is installed (apt-get / the venv); under CI=true a server that
# cannot be started fails the run instead of letting its tests skip.
# Python's documentation (Debian's python3.11-doc) is the docs_qa example's corpus:
# python_docs_check installs it and exports SHIPYARD_TEST_PYTHON_DOCS (its reStructuredText
# sources); `make demo-docs-qa` calls it alone.
# Each server gets SERVICES_WAIT seconds (120) to answer: a first start right after an
# install can take much longer than a warm one.
SERVICES_DIR="${SERVICES_DIR:-$PWD/.services}"
SERVICES_WAIT="${SERVICES_WAIT:-120}"

_free_port() { "${PYTHON:-.venv/bin/python}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

_fail_or_warn() {
  if [ "${CI:-}" = "true" ]; then echo "services: $1" >&2; return 1; fi
  echo "services: WARNING: $1 (its tests will be skipped; under CI=true this fails)" >&2
}

# _wait_for WHAT PID CMD...: say what we wait for, then run CMD until it succeeds, for up to
# SERVICES_WAIT seconds; give up early when PID (if not empty) has exited.
_wait_for() {
  local what="$1" pid="$2" deadline; shift 2
  echo "services: waiting for $what (up to $SERVICES_WAIT s)" >&2
  deadline=$((SECONDS + SERVICES_WAIT))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    [ "$SECONDS" -le "$deadline" ] || return 1  # whole seconds: at least SERVICES_WAIT
    sleep 0.2
  done
}

_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

_postgres_start() {
  local bin; bin="$(_pg_bin)"
  if [ -z "$bin" ]; then
    echo "services: installing PostgreSQL (apt-get)" >&2
    (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || true
    bin="$(_pg_bin)"
  fi
  [ -n "$bin" ] || { _fail_or_warn "PostgreSQL is not installed and could not be installed"; return; }
  local dir="$SERVICES_DIR/pg" port; port="$(_free_port)"
  rm -rf "$dir"; mkdir -p "$dir"; chown postgres "$dir" 2>/dev/null || true
  local as=(); [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$SERVICES_DIR/pg-initdb.log" 2>&1 \
    || { _fail_or_warn "initdb failed (see $SERVICES_DIR/pg-initdb.log)"; return; }
  echo "services: waiting for PostgreSQL on 127.0.0.1:$port (up to $SERVICES_WAIT s)" >&2
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t "$SERVICES_WAIT" \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
    || { _fail_or_warn "PostgreSQL did not start within $SERVICES_WAIT s (see $dir/log)"; return; }
  echo "$bin" > "$SERVICES_DIR/pg-bin"
  export SHIPYARD_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  echo "services: PostgreSQL on 127.0.0.1:$port" >&2
}

_s3_start() {
  local moto="$PWD/.venv/bin/moto_server" port
  [ -x "$moto" ] || { _fail_or_warn "moto_server is not installed in .venv (make venv)"; return; }
  port="$(_free_port)"
  "$moto" -H 127.0.0.1 -p "$port" >"$SERVICES_DIR/moto.log" 2>&1 &
  echo $! > "$SERVICES_DIR/moto.pid"
  _wait_for "moto_server on 127.0.0.1:$port" "$(cat "$SERVICES_DIR/moto.pid")" \
    curl -s -o /dev/null "http://127.0.0.1:$port/" \
    || { _fail_or_warn "moto_server did not answer within $SERVICES_WAIT s (see $SERVICES_DIR/moto.log)"; return; }
  export SHIPYARD_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  echo "services: S3-compatible server (moto_server) on 127.0.0.1:$port" >&2
}

_redis_start() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "services: installing redis-server (apt-get)" >&2
    (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || true
  fi
  command -v redis-server >/dev/null 2>&1 || { _fail_or_warn "redis-server is not installed and could not be installed"; return; }
  local urls="" name port
  for name in redis1 redis2; do
    port="$(_free_port)"
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
      --pidfile "$SERVICES_DIR/$name.pid" --logfile "$SERVICES_DIR/$name.log" --dir "$SERVICES_DIR" \
      || { _fail_or_warn "redis-server did not start (see $SERVICES_DIR/$name.log)"; return; }
    _wait_for "redis-server on 127.0.0.1:$port" "" redis-cli -h 127.0.0.1 -p "$port" ping \
      || { _fail_or_warn "redis-server on port $port did not answer within $SERVICES_WAIT s (see $SERVICES_DIR/$name.log)"; return; }
    urls="${urls:+$urls,}redis://127.0.0.1:$port/0"
  done
  export SHIPYARD_TEST_REDIS_URLS="$urls"
  echo "services: two redis-servers at $urls" >&2
}

_chromium_check() {
  # Headless Chromium for the UI's browser tests: Debian's package, never a browser
  # build downloaded by playwright.
  if ! [ -x /usr/bin/chromium ]; then
    echo "services: installing chromium (apt-get)" >&2
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || true
  fi
  [ -x /usr/bin/chromium ] || { _fail_or_warn "chromium is not installed and could not be installed"; return; }
  export SHIPYARD_TEST_CHROMIUM=/usr/bin/chromium
  echo "services: chromium at $SHIPYARD_TEST_CHROMIUM" >&2
}

_nginx_check() {
  # Debian's nginx for the tests that put a load balancer in front of several hosts; each
  # such test starts its own nginx (its own config, port and prefix), as with Chromium.
  if ! [ -x /usr/sbin/nginx ]; then
    echo "services: installing nginx-light (apt-get)" >&2
    (apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null) || true
  fi
  [ -x /usr/sbin/nginx ] || { _fail_or_warn "nginx is not installed and could not be installed"; return; }
  export SHIPYARD_TEST_NGINX=/usr/sbin/nginx
  echo "services: nginx at $SHIPYARD_TEST_NGINX" >&2
}

PYTHON_DOCS="${PYTHON_DOCS:-/usr/share/doc/python3.11/html/_sources}"

python_docs_check() {
  if ! [ -f "$PYTHON_DOCS/library/os.rst.txt" ]; then
    echo "services: installing python3.11-doc (apt-get)" >&2
    (apt-get update -qq && apt-get install -y -qq python3.11-doc >/dev/null) || true
  fi
  [ -f "$PYTHON_DOCS/library/os.rst.txt" ] || { _fail_or_warn "python3.11-doc is not installed and could not be installed (no $PYTHON_DOCS)"; return; }
  export SHIPYARD_TEST_PYTHON_DOCS="$PYTHON_DOCS"
  echo "services: Python's documentation at $SHIPYARD_TEST_PYTHON_DOCS" >&2
}

services_start() {
  mkdir -p "$SERVICES_DIR"
  _chromium_check || return 1
  _nginx_check || return 1
  python_docs_check || return 1
  _postgres_start || return 1
  _s3_start || return 1
  _redis_start || return 1
}

services_stop() {
  local name
  for name in redis1 redis2; do
    if [ -f "$SERVICES_DIR/$name.pid" ]; then kill "$(cat "$SERVICES_DIR/$name.pid")" 2>/dev/null; rm -f "$SERVICES_DIR/$name.pid"; fi
  done
  if [ -f "$SERVICES_DIR/moto.pid" ]; then kill "$(cat "$SERVICES_DIR/moto.pid")" 2>/dev/null; rm -f "$SERVICES_DIR/moto.pid"; fi
  if [ -f "$SERVICES_DIR/pg-bin" ] && [ -d "$SERVICES_DIR/pg/data" ]; then
    local as=(); [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
    "${as[@]}" "$(cat "$SERVICES_DIR/pg-bin")/pg_ctl" -D "$SERVICES_DIR/pg/data" -m immediate stop >/dev/null 2>&1
  fi
  return 0
}
