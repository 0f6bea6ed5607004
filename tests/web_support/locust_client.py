#!/usr/bin/env python3
"""A client written against Locust 2.47's HTTP API (locust/web.py), run
unchanged against Locust and against locusta by tests/web_locust_compat.rs.

It drives a run the way Locust's UI and scripts do (POST /swarm with a form,
POST /stop, POST /stats/reset) and parses GET /stats/requests the way the
Prometheus locust_exporter does (the fields and types it reads). Standard
library only (urllib). Every wait is bounded.

Usage: locust_client.py BASE_URL TARGET_HOST EXPECT_WORKERS
Prints one JSON document: every endpoint's body (JSON endpoints) or its
first line and headers (CSV/HTML), for the test to compare key sets.
Exits non-zero, with the reason on stderr, when the API breaks the client.
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 10
WAIT = 30.0


def call(base, method, path, form=None):
    data = None
    headers = {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(base, path):
    status, _, body = call(base, "GET", path)
    if status != 200:
        fail(f"GET {path}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


def fail(why):
    print(f"locust_client: {why}", file=sys.stderr)
    sys.exit(1)


def want(cond, why):
    if not cond:
        fail(why)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def exporter_parse(stats, expect_workers):
    """What locust_exporter reads from /stats/requests, with its types."""
    for key in ("state", "user_count", "total_rps", "fail_ratio", "stats", "errors"):
        want(key in stats, f"/stats/requests lacks {key}")
    want(isinstance(stats["state"], str), "state is not a string")
    want(stats["state"] in ("ready", "spawning", "running", "cleanup", "stopping", "stopped", "missing"),
         f"unknown state {stats['state']!r}")
    want(isinstance(stats["user_count"], int), "user_count is not an integer")
    want(is_num(stats["total_rps"]) and is_num(stats["fail_ratio"]), "total_rps/fail_ratio not numbers")
    cur = stats["current_response_time_percentiles"]
    for p in ("response_time_percentile_0.5", "response_time_percentile_0.95"):
        want(p in cur and (cur[p] is None or is_num(cur[p])), f"current percentile {p} missing or not a number")
    rows = stats["stats"]
    want(rows and rows[-1]["name"] == "Aggregated", "the last stats row is not Aggregated")
    for row in rows:
        for key in ("num_requests", "num_failures", "avg_response_time", "min_response_time",
                    "max_response_time", "current_rps", "current_fail_per_sec", "median_response_time",
                    "avg_content_length", "total_rps", "total_fail_per_sec",
                    "response_time_percentile_0.95", "response_time_percentile_0.99"):
            want(is_num(row.get(key)), f"stats row {row.get('name')!r}: {key} not a number: {row.get(key)!r}")
        want(isinstance(row["name"], str), "row name not a string")
        want(row["method"] is None or isinstance(row["method"], str), "method neither null nor a string")
    for err in stats["errors"]:
        for key in ("method", "name", "error"):
            want(isinstance(err.get(key), str), f"error {key} not a string: {err!r}")
        want(isinstance(err.get("occurrences"), int), f"error occurrences not an integer: {err!r}")
    if expect_workers:
        want(stats.get("worker_count") == expect_workers, f"worker_count {stats.get('worker_count')!r}")
        for w in stats["workers"]:
            want(isinstance(w["id"], str) and isinstance(w["state"], str), f"worker {w!r}")
            want(isinstance(w["user_count"], int), f"worker user_count {w!r}")
            want(is_num(w["cpu_usage"]) and is_num(w["memory_usage"]), f"worker usage {w!r}")


def wait_stats(base, what, ok, expect_workers):
    deadline = time.monotonic() + WAIT
    last = None
    while time.monotonic() < deadline:
        last = get_json(base, "/stats/requests")
        exporter_parse(last, expect_workers)
        if ok(last):
            return last
        time.sleep(0.2)
    fail(f"{what}: not within {WAIT}s; last: {json.dumps(last)[:2000]}")


def download(base, path):
    status, headers, body = call(base, "GET", path)
    want(status == 200, f"GET {path}: HTTP {status}")
    lower = {k.lower(): v for k, v in headers.items()}
    text = body.decode("utf-8", "replace")
    return {
        "first_line": text.splitlines()[0] if text else "",
        "content_type": lower.get("content-type", "").split(";")[0],
        "disposition": "content-disposition" in lower,
    }


def main():
    base, host, expect_workers = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3])
    out = {}
    out["ready"] = wait_stats(base, "ready", lambda s: s["state"] == "ready", expect_workers)
    status, _, body = call(base, "POST", "/swarm", {"user_count": 2, "spawn_rate": 20, "host": host})
    want(status == 200, f"POST /swarm: HTTP {status}: {body[:300]!r}")
    out["swarm"] = json.loads(body)
    want(out["swarm"]["success"] is True, f"swarm refused: {out['swarm']}")

    def busy(s):
        agg = s["stats"][-1]
        return s["state"] == "running" and s["user_count"] == 2 and agg["num_requests"] >= 20 and s["errors"]

    out["running"] = wait_stats(base, "running with requests and errors", busy, expect_workers)
    out["exceptions"] = get_json(base, "/exceptions")
    out["tasks"] = get_json(base, "/tasks")
    for name, path in (("requests_csv", "/stats/requests/csv"), ("failures_csv", "/stats/failures/csv"),
                       ("exceptions_csv", "/exceptions/csv"), ("report", "/stats/report?download=1")):
        out[name] = download(base, path)
    status, _, body = call(base, "POST", "/stats/reset", {})
    want(status == 200, f"POST /stats/reset: HTTP {status}")
    out["reset"] = body.decode()
    status, _, body = call(base, "POST", "/stop", {})
    want(status == 200, f"POST /stop: HTTP {status}")
    out["stop"] = json.loads(body)
    out["stopped"] = wait_stats(base, "stopped", lambda s: s["state"] == "stopped", expect_workers)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
