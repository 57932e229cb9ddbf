#!/usr/bin/env python3
"""myapp: the example's HTTP server (Python standard library + psycopg2).

GET /         records a visit (INSERT INTO visits) and answers JSON with the greetings rows and
              the number of visits so far: every answer shows data the app wrote itself.
GET /healthz  200 when the database answers SELECT 1, 503 otherwise.

Settings come from the environment: POSTSTACK_DATABASE_URL (required; the URL as seen from the
environment's containers, host <project>-<env>-postgres), APP_PORT (default 8080) and LOG_LEVEL
(debug, info, warn or error; default info). POSTSTACK_PROJECT and POSTSTACK_ENVIRONMENT, when set,
are echoed in the answer.
"""

import json
import logging
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}

log = logging.getLogger("myapp")


def connect(url):
    # A connection per request: the server keeps working across a database restart, and an
    # example has no load that would need a pool.
    return psycopg2.connect(url, connect_timeout=3, application_name="myapp")


class Handler(BaseHTTPRequestHandler):
    server_version = "myapp/1"

    def do_GET(self):
        if self.path == "/healthz":
            self.healthz()
        elif self.path == "/":
            self.index()
        else:
            self.answer(404, {"error": "not found", "path": self.path})

    def healthz(self):
        try:
            with connect(self.server.database_url) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
            conn.close()
        except psycopg2.Error as e:
            log.warning("healthz: database does not answer: %s", str(e).strip())
            self.answer(503, {"status": "database unavailable"})
            return
        self.answer(200, {"status": "ok"})

    def index(self):
        try:
            conn = connect(self.server.database_url)
            try:
                # One transaction: the visit is committed with the answer that counts it.
                with conn, conn.cursor() as cur:
                    cur.execute("INSERT INTO visits (path) VALUES (%s) RETURNING id", (self.path,))
                    visit = cur.fetchone()[0]
                    cur.execute("SELECT count(*) FROM visits")
                    visits = cur.fetchone()[0]
                    cur.execute("SELECT id, message FROM greetings ORDER BY id")
                    greetings = [{"id": i, "message": m} for i, m in cur.fetchall()]
            finally:
                conn.close()
        except psycopg2.Error as e:
            log.error("GET /: %s", str(e).strip())
            self.answer(503, {"error": "database error"})
            return
        self.answer(200, {
            "project": os.environ.get("POSTSTACK_PROJECT", ""),
            "environment": os.environ.get("POSTSTACK_ENVIRONMENT", ""),
            "greetings": greetings,
            "visit": visit,
            "visits": visits,
        })

    def answer(self, status, body):
        data = (json.dumps(body, indent=2) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # access log at debug level, not on stderr always
        log.debug("%s %s", self.address_string(), fmt % args)


def main():
    level = os.environ.get("LOG_LEVEL", "info").lower()
    logging.basicConfig(stream=sys.stdout, level=LEVELS.get(level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = os.environ.get("POSTSTACK_DATABASE_URL", "")
    if not url:
        log.error("POSTSTACK_DATABASE_URL is not set")
        return 2
    port = int(os.environ.get("APP_PORT", "8080"))

    # tini (the image's PID 1) forwards SIGTERM here; exit at once so that `podman rm`, `kube
    # down` and `docker compose down` do not wait out their stop timeout.
    def stop(signum, _frame):
        log.info("received %s, stopping", signal.Signals(signum).name)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True
    server.database_url = url
    log.info("listening on :%d (project=%s environment=%s)", port,
             os.environ.get("POSTSTACK_PROJECT", "?"), os.environ.get("POSTSTACK_ENVIRONMENT", "?"))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
