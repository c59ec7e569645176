#!/bin/sh
# Start the Space: nginx on one public port in front of the API and the Streamlit dashboard,
# all three kept running by supervisord. The container runs this script, and so does
# tests/e2e/test_space_start.py on loopback ports: what is tested is what is shipped.
#
# Environment (defaults are the Space's):
#   PORT=7860 LISTEN_HOST=0.0.0.0   the public port and interface (nginx)
#   API_PORT=8000 DASHBOARD_PORT=8501   internal loopback ports
#   BUCKET_DIR=/data                where the Space's storage bucket volume is mounted, if any
#   LOCAL_DATA_DIR                  the local disk's database folder (default $APP_DIR/data)
#   RUN_DIR                         pid files, socket, nginx temp files (default under TMPDIR)
#   PYTHON=python NGINX_BIN=nginx   the interpreter with the requirements, the nginx binary
#   DASHBOARD_SCRIPT                the Streamlit script (default dashboard/app.py)
# and every setting of the API (.env.example), passed through unchanged.
set -eu

log() {
    printf 'start.sh: %s\n' "$*" >&2
}

APP_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
export APP_DIR
export PORT="${PORT:-7860}"
export LISTEN_HOST="${LISTEN_HOST:-0.0.0.0}"
export API_PORT="${API_PORT:-8000}"
export DASHBOARD_PORT="${DASHBOARD_PORT:-8501}"
export DASHBOARD_SCRIPT="${DASHBOARD_SCRIPT:-$APP_DIR/dashboard/app.py}"
export PYTHON="${PYTHON:-python}"
# Not NGINX: nginx itself reads that variable (inherited sockets of a binary upgrade).
export NGINX_BIN="${NGINX_BIN:-nginx}"
export RUN_DIR="${RUN_DIR:-${TMPDIR:-/tmp}/futurisys-space}"
# The links on GET / point at the dashboard behind the same port.
export DASHBOARD_URL="${DASHBOARD_URL:-/dashboard/}"
BUCKET_DIR="${BUCKET_DIR:-/data}"
LOCAL_DATA_DIR="${LOCAL_DATA_DIR:-$APP_DIR/data}"

# Trace storage. A Space's disk is wiped at every restart. A storage bucket volume outlives
# it, but is eventually consistent with no locking across nodes: no live SQLite file goes
# there. The database stays on local disk, and every trace row is also appended to a log on
# the bucket before its answer leaves, replayed at the next start (db/trace_log.py).
# DATABASE_URL, when set, always wins.
if [ -z "${DATABASE_URL:-}" ]; then
    export DATABASE_URL="sqlite:///$LOCAL_DATA_DIR/traces.db"
    if [ -d "$BUCKET_DIR" ] && [ -w "$BUCKET_DIR" ]; then
        export TRACE_LOG_DIR="${TRACE_LOG_DIR:-$BUCKET_DIR/trace-log}"
    fi
fi
case "$DATABASE_URL" in
    "sqlite:///$BUCKET_DIR/"*)
        storage=persistent
        log "WARNING: DATABASE_URL is a SQLite file on the bucket mount $BUCKET_DIR: a bucket"
        log "has no file locking and is eventually consistent, so that file can be corrupted."
        log "Unset DATABASE_URL to keep the database local with its log on the bucket." ;;
    sqlite*) if [ -n "${TRACE_LOG_DIR:-}" ]; then storage=persistent; else storage=ephemeral; fi ;;
    *) storage=external ;;
esac
export TRACE_STORAGE="${TRACE_STORAGE:-$storage}"
if [ "$TRACE_STORAGE" = ephemeral ]; then
    log "############################################################################"
    log "WARNING: TRACES ARE EPHEMERAL: the prediction history is lost at every restart."
    log "Mount a storage bucket volume on the Space at $BUCKET_DIR, or set DATABASE_URL"
    log "to a PostgreSQL database reachable on port 443, 80 or 8080, to keep them."
    log "############################################################################"
elif [ -n "${TRACE_LOG_DIR:-}" ]; then
    log "trace storage: $TRACE_STORAGE (trace log in $TRACE_LOG_DIR)"
else
    log "trace storage: $TRACE_STORAGE"
fi

mkdir -p "$RUN_DIR/nginx"
if [ "$(id -u)" = 0 ]; then
    # nginx started by root hands its workers to "nobody", who cannot enter a private run
    # directory; keep them as root (the Space runs as user 1000, where no switch happens).
    user_directive="user root;"
else
    user_directive=""
fi
sed -e "s|@USER_DIRECTIVE@|$user_directive|" \
    -e "s|@RUN_DIR@|$RUN_DIR|g" \
    -e "s|@DEPLOY_DIR@|$APP_DIR/deploy|g" \
    -e "s|@LISTEN_HOST@|$LISTEN_HOST|g" \
    -e "s|@PORT@|$PORT|g" \
    -e "s|@API_PORT@|$API_PORT|g" \
    -e "s|@DASHBOARD_PORT@|$DASHBOARD_PORT|g" \
    "$APP_DIR/deploy/nginx.conf.template" >"$RUN_DIR/nginx.conf"
# A broken proxy config fails here, with nginx's message, rather than in a restart loop.
"$NGINX_BIN" -e stderr -t -q -c "$RUN_DIR/nginx.conf"

log "serving on $LISTEN_HOST:$PORT (API on :$API_PORT, dashboard on :$DASHBOARD_PORT under /dashboard/)"
cd "$APP_DIR"
# exec: supervisord gets the container's SIGTERM and stops its programs cleanly.
exec "$PYTHON" -m supervisor.supervisord -c "$APP_DIR/deploy/supervisord.conf"
