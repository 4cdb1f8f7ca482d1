#!/usr/bin/env bash
# Run the example service locally: migrate, serve HTTP (gunicorn), work off jobs (db_worker;
# rqworker with TASKS_BACKEND=rq, a celery worker with TASKS_BACKEND=celery), run job recovery
# and delete orphaned import files (each started again whenever it exits); once the server
# listens, print a fresh API key for workspace "demo", a curl line to try and what else there
# is to see; until Ctrl-C.
#
# Environment: PORT (8000), HOST (127.0.0.1), PYTHON, WEB_WORKERS (2), and everything
# example_project/settings.py reads (DATABASE_URL, TASKS_BACKEND, IDEMPOTENCY_STORE, REDIS_URL…).
# A port in use is an error (status 1), and so is a web server that never listens (its status).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
	if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
BASE_URL="http://$HOST:$PORT"
export DJANGO_SETTINGS_MODULE=example_project.settings
export PYTHONUNBUFFERED=1

# The port first, bound as gunicorn binds it (SO_REUSEADDR), before anything is made or printed.
"$PYTHON" - "$HOST" "$PORT" <<'PY'
import errno, socket, sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host.strip("[]"), port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            sys.exit(
                f"run.sh: {host} port {port} is in use (another `make run`?). Stop what listens"
                f" there, or choose another port: make run PORT={port + 1}"
            )
        sys.exit(f"run.sh: cannot listen on {host} port {port}: {error.strerror or error}.")
PY

echo "Migrating the database…" >&2
"$PYTHON" manage.py migrate --noinput -v 0
KEY=$("$PYTHON" manage.py create_api_key demo --label "run.sh" 2>/dev/null)

# gunicorn's default access log names the Basic auth user: here, the API key. Leave it out.
ACCESS_LOG_FORMAT='%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'

GRACE_TICKS=50 # 10 s (in 0.2 s ticks) for a process to finish in-flight work when stopped

# reap PID...: wait for processes sent SIGTERM; SIGKILL those still running after the grace
# (a worker's job, if any, is picked up again by recover_jobs).
reap() {
	for _ in $(seq "$GRACE_TICKS"); do
		alive=
		for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.2
	done
	kill -KILL "$@" 2>/dev/null || true
	for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# supervise NAME COMMAND...: run COMMAND, and start it again whenever it exits (a worker exits
# when its database is away for a moment, or it may be killed), until this is sent SIGTERM.
# The pause before a restart doubles on each exit, from 1 s up to 30 s, and is 1 s again
# after a run of a minute or more.
supervise() {
	local name=$1 child= status started delay=1 stopping=
	shift
	# Not this script's traps (Ctrl-C is handled there, by SIGTERM to each supervisor). SIGTERM:
	# stop the process (or the pause) now running, and start nothing again.
	trap - EXIT
	trap '' INT
	trap 'stopping=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true' TERM
	while [ -z "$stopping" ]; do
		started=$SECONDS
		"$@" &
		child=$!
		[ -z "$stopping" ] || kill -TERM "$child" 2>/dev/null || true
		status=0
		wait "$child" || status=$?
		if [ -n "$stopping" ]; then
			reap "$child"
			break
		fi
		child=
		[ $((SECONDS - started)) -lt 60 ] || delay=1
		echo "run.sh: $name exited (status $status); starting it again in $delay s." >&2
		sleep "$delay" &
		child=$!
		[ -z "$stopping" ] || kill -TERM "$child" 2>/dev/null || true
		wait "$child" || true
		child=
		delay=$((delay * 2 > 30 ? 30 : delay * 2))
	done
}

pids=()
READY=$(mktemp -u "${TMPDIR:-/tmp}/run-sh-ready.XXXXXX") # gunicorn creates it once it listens
stop() {
	trap - INT TERM EXIT
	rm -f "$READY"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	# A supervisor gives its process the same 10 s: a little longer for them.
	GRACE_TICKS=60 reap "${pids[@]}"
}
trap stop INT TERM EXIT

RUN_SH_READY_FILE=$READY "$PYTHON" -m gunicorn example_project.wsgi:application \
	--config example_project/gunicorn_conf.py \
	--bind "$HOST:$PORT" --workers "${WEB_WORKERS:-2}" --threads 4 \
	--access-logfile - --access-logformat "$ACCESS_LOG_FORMAT" \
	--graceful-timeout 5 --no-control-socket &
web=$!
pids+=("$web")
until [ -e "$READY" ]; do
	if ! kill -0 "$web" 2>/dev/null; then # it gave up: the port was taken meanwhile, or worse
		status=0
		wait "$web" || status=$?
		echo "run.sh: the web server did not start on $HOST port $PORT (status $status); its" \
			"messages are above." >&2
		exit $((status == 0 ? 1 : status))
	fi
	sleep 0.1
done
rm -f "$READY"

case "${TASKS_BACKEND:-db}" in
db)
	supervise db_worker "$PYTHON" manage.py db_worker &
	pids+=($!)
	;;
rq)
	# --job-class: without it every job fails ("'Task' object is not callable").
	supervise rqworker "$PYTHON" manage.py rqworker default --job-class django_tasks_rq.Job &
	pids+=($!)
	;;
celery)
	supervise celery "$PYTHON" -m celery -A example_project worker --loglevel WARNING &
	pids+=($!)
	;;
esac
# Sends jobs whose worker died, or whose enqueue was lost, again (idempotency_jobs recovery).
supervise recover_jobs "$PYTHON" manage.py recover_jobs --every 60 &
pids+=($!)
# Deletes stored import CSVs whose job never committed (its request rolled back or died).
supervise purge_import_files "$PYTHON" manage.py purge_import_files --every 3600 &
pids+=($!)

cat <<EOF

  Example service on $BASE_URL  (API docs: $BASE_URL/v1/docs, schema: $BASE_URL/v1/schema)

  API key for workspace "demo":  $KEY

  Try the subscriber import from Mailrith's API docs (run it twice: the second answer is the
  same job; Stannp's letter is on the docs page):

curl -X POST $BASE_URL/v1/jobs/subscriber-imports \\
  -H "Authorization: Bearer $KEY" \\
  -H "Idempotency-Key: import-2026-04-11-website-signups" \\
  -H "Content-Type: application/json" \\
  -d '{
    "csv_text": "Email,Name\\nada@example.com,Ada Lovelace",
    "mappings": [
      {
        "csv_column": "Email",
        "field": { "type": "email" }
      },
      {
        "csv_column": "Name",
        "field": { "type": "name" }
      }
    ]
  }'

  Then: curl -H "Authorization: Bearer $KEY" $BASE_URL/v1/subscribers

  Admin: $BASE_URL/admin/ (jobs, keys, workspaces). Make a login first, in another
  terminal, in $PWD${DATABASE_URL:+, with the same DATABASE_URL}:
    $PYTHON manage.py createsuperuser

  Stop with Ctrl-C.

EOF

# The workers are started again when they exit; gunicorn restarts its own workers, and if it
# stops itself, everything stops, with its status (Ctrl-C, SIGTERM: the signal's).
status=0
wait -n || status=$?
exit "$status"
