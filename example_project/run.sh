#!/usr/bin/env bash
# Run the example service locally: migrate, print a fresh API key for workspace "demo" and a curl
# line to try, then serve HTTP (gunicorn), work off jobs (db_worker; rqworker with
# TASKS_BACKEND=rq, a celery worker with TASKS_BACKEND=celery) and run job recovery, until Ctrl-C.
#
# Environment: PORT (8000), HOST (127.0.0.1), PYTHON, WEB_WORKERS (2), and everything
# example_project/settings.py reads (DATABASE_URL, TASKS_BACKEND, IDEMPOTENCY_STORE, REDIS_URL…).
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

echo "Migrating the database…" >&2
"$PYTHON" manage.py migrate --noinput -v 0
KEY=$("$PYTHON" manage.py create_api_key demo --label "run.sh" 2>/dev/null)

cat <<EOF

  Example service on $BASE_URL  (API docs: $BASE_URL/v1/docs, schema: $BASE_URL/v1/schema)

  API key for workspace "demo":  $KEY

  Try the Mailrith import (run it twice: the second answer is the same job):

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
  Stop with Ctrl-C.

EOF

# gunicorn's default access log names the Basic auth user: here, the API key. Leave it out.
ACCESS_LOG_FORMAT='%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'

pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	# Ten seconds to finish in-flight work; a worker still running then is killed (its job,
	# if any, is picked up again by recover_jobs on the next start).
	for _ in $(seq 50); do
		alive=
		for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.2
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	wait || true
}
trap stop INT TERM EXIT

"$PYTHON" -m gunicorn example_project.wsgi:application \
	--bind "$HOST:$PORT" --workers "${WEB_WORKERS:-2}" --threads 4 \
	--access-logfile - --access-logformat "$ACCESS_LOG_FORMAT" \
	--graceful-timeout 5 --no-control-socket &
pids+=($!)

case "${TASKS_BACKEND:-db}" in
db)
	"$PYTHON" manage.py db_worker &
	pids+=($!)
	;;
rq)
	# --job-class: without it every job fails ("'Task' object is not callable").
	"$PYTHON" manage.py rqworker default --job-class django_tasks_rq.Job &
	pids+=($!)
	;;
celery)
	"$PYTHON" -m celery -A example_project worker --loglevel WARNING &
	pids+=($!)
	;;
esac
# Sends jobs whose worker died, or whose enqueue was lost, again (idempotency_jobs recovery).
"$PYTHON" manage.py recover_jobs --every 60 &
pids+=($!)

# Whichever process stops first (or Ctrl-C) stops the others.
wait -n || true
