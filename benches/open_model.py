#!/usr/bin/env python3
"""Open-model accuracy and cost: target vs achieved arrival rate, and CPU per request.

Accuracy: for each I/O driver (io_uring, epoll) and each target rate (default
100, 1000 and 20000 iterations/s), `locusta --headless --rate R` runs raw mode
against one nginx worker (benches/nginx.conf, pinned to one CPU; locusta pinned
to the other, one shard). The achieved rate is counted by the server, not by
locusta: nginx's stub_status request counter is read at 2 s and at 12 s of a
14 s run (a 10 s window after start-up), and the rate is the requests served in
the window (minus the status reads) over the window's length as this script
timed it. The error is (achieved - target) / target.

Cost: the generator's CPU (user + sys, wait4's rusage over the whole run) per
request it completed (its CSV's Aggregated row), for the open model at a fixed
rate (default 20000/s) and for locusta's own closed loop (-u users, no think
time, as fast as the server answers) with the same users. The difference is an
upper bound on what the open model's scheduler, queue and second (corrected)
histogram cost per request (the closed loop also runs its connections busier,
which makes each wake cheaper). wrk2 (wrk's fixed-rate fork) is not packaged in
Debian, so there is no wrk2 column: see benches/README.md.

Python 3.8+ standard library only; needs nginx (with stub_status, as Debian's
nginx-light has) and taskset, and a release build (`cargo build --release`).
Reuses benches/compare.py's nginx and measurement helpers.
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (benches/compare.py: nginx, run_measured, RunError)

ROOT = os.path.dirname(HERE)
STATUS = "locusta_status"


def start_nginx(nginx, cpu, workdir):
    """compare.py's nginx, plus a stub_status location for the request counter."""
    port = compare.free_port()
    conf = compare.nginx_config(nginx, port, workdir)
    with open(conf) as f:
        text = f.read()
    text = text.replace("        location / {",
                        f"        location = /{STATUS} {{ stub_status; }}\n        location / {{", 1)
    with open(conf, "w") as f:
        f.write(text)
    log = os.path.join(workdir, "error.log")
    out = open(os.path.join(workdir, "nginx.out"), "w")
    cmd = ["taskset", "-c", str(cpu), nginx, "-p", workdir + "/", "-e", log, "-c", conf]
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise compare.RunError(f"nginx exited: {compare.tail(log)}")
        try:
            served(base)
            return proc, base
        except OSError:
            time.sleep(0.05)
    compare.stop_nginx(proc)
    raise compare.RunError("nginx did not answer within 10 s")


def served(base):
    """nginx's total requests so far (stub_status's third number line)."""
    with urllib.request.urlopen(base + STATUS, timeout=2) as r:
        lines = r.read().decode().splitlines()
    return int(lines[2].split()[2])


def csv_requests(prefix):
    with open(prefix + "_stats.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    return int(rows[-1]["Request Count"]) if rows else 0


def run(args, base, workdir, name, flags, window):
    """Run locusta with `flags`; return (served in the window / its length, CPU s, requests).
    `window`: (from, to) seconds after the start to count server-side requests in."""
    prefix = os.path.join(workdir, name)
    cmd = ["taskset", "-c", str(args.load_cpu), args.bin, "--headless", "--shards", "1",
           "--only-summary", "--csv", prefix, *flags, base]
    out_path = os.path.join(workdir, name + ".out")
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    marks = []
    for at in window:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        marks.append((time.monotonic(), served(base)))
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise compare.RunError(f"{name} exited {proc.returncode}:\n{compare.tail(out_path)}")
    (ta, a), (tb, b) = marks
    rate = (b - a - 1) / (tb - ta)  # the second status read is counted too
    return rate, ru.ru_utime + ru.ru_stime, csv_requests(prefix)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "locusta"))
    p.add_argument("--rates", default="100,1000,20000", help="target rates (default 100,1000,20000)")
    p.add_argument("--drivers", default="uring,epoll")
    p.add_argument("-u", "--users", type=int, default=100, help="pool (--max-users) and closed-loop users")
    p.add_argument("--cost-rate", type=float, default=20000.0, help="fixed rate for CPU/request")
    p.add_argument("--target-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    args = p.parse_args()
    nginx = compare.which("nginx")
    if not nginx or not compare.which("taskset"):
        sys.exit("needs nginx and taskset (apt-get install -y nginx-light util-linux)")
    if not os.path.exists(args.bin):
        sys.exit(f"no {args.bin}: cargo build --release")
    with tempfile.TemporaryDirectory(prefix="locusta-open-") as workdir:
        proc, base = start_nginx(nginx, args.target_cpu, workdir)
        try:
            print(f"{'driver':8} {'target/s':>10} {'achieved/s':>12} {'error':>8}")
            for driver in args.drivers.split(","):
                for rate in [float(r) for r in args.rates.split(",")]:
                    flags = ["--io", driver, "--rate", f"{rate:g}", "-u", str(args.users), "-t", "14s"]
                    got, _, _ = run(args, base, workdir, f"acc-{driver}-{rate:g}", flags, (2.0, 12.0))
                    err = (got - rate) / rate * 100
                    print(f"{driver:8} {rate:10.0f} {got:12.1f} {err:+7.2f}%", flush=True)
            print()
            print(f"{'driver':8} {'model':22} {'req/s':>10} {'CPU us/req':>11}")
            for driver in args.drivers.split(","):
                for model, flags in (
                    (f"open {args.cost_rate:g}/s", ["--rate", f"{args.cost_rate:g}"]),
                    ("closed (no think time)", ["-r", str(args.users)]),
                ):
                    flags = ["--io", driver, "-u", str(args.users), "-t", "10s", *flags]
                    got, cpu, n = run(args, base, workdir, f"cost-{driver}-{model[:4]}", flags, (2.0, 9.0))
                    us = cpu / n * 1e6 if n else float("inf")
                    print(f"{driver:8} {model:22} {got:10.0f} {us:11.2f}", flush=True)
        finally:
            compare.stop_nginx(proc)


if __name__ == "__main__":
    main()
