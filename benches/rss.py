#!/usr/bin/env python3
"""Resident memory per connected user in think time: locusta with N users vs 1 user.

nginx (benches/nginx.conf, worker_connections 16384) serves a fixed body on
127.0.0.1; locusta runs benches/lua/idle.lua (each user does one GET in
on_start, which opens its keep-alive connection, then sits in a 600 s wait)
with --shards 1, first with -u 1, then with -u N (default 10,000, -r 2000).
Once every user is spawned and connected (nginx holds N established
connections) and locusta's VmRSS (/proc/PID/status) has not moved for 2 s,
that VmRSS is the sample; then locusta gets SIGTERM. The result is
(RSS at N users - RSS at 1 user) / (N - 1), in KB per user; target <= 8 KB (issue 15).

Python 3.8+ standard library only; reuses compare.py's nginx handling. Needs
nginx and taskset (`apt-get install -y nginx-light`), a release build of
locusta (`cargo build --release`) and an open-files limit above N (locusta
holds N client sockets, the nginx worker N server sockets: one process each).
See benches/README.md.
"""

import argparse
import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (nginx start/stop, busy check)

SCRIPT = os.path.join(HERE, "lua", "idle.lua")
STABLE_S = 2.0  # RSS unchanged this long (after spawn and connect) = plateau
TARGET_KB = 8  # issue 15: RSS per idle connected Lua user


def vm_status(pid):
    """VmRSS and VmHWM of pid in KB (None when gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            kv = dict(line.split(":", 1) for line in f if ":" in line)
        return int(kv["VmRSS"].split()[0]), int(kv["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def established(port):
    """Established TCP connections whose local port is `port` (nginx's side), from /proc/net/tcp{,6}."""
    hexport = f":{port:04X}"
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split(None, 4)
                    if fields[3] == "01" and fields[1].endswith(hexport):
                        n += 1
        except (OSError, StopIteration):
            pass
    return n


def measure(args, users, url, port, workdir):
    """Run locusta with `users` idle users; return a dict with the plateau RSS."""
    spawn_s = users / args.spawn_rate
    run_s = int(spawn_s + args.settle + 30)  # -t: long enough to reach the plateau; SIGTERM ends it sooner
    prefix = os.path.join(workdir, f"idle-{users}")
    cmd = ["taskset", "-c", str(args.load_cpu), args.bin, "-f", SCRIPT, "-H", url.rstrip("/"),
           "--headless", "-u", str(users), "-r", str(args.spawn_rate), "-t", f"{run_s}s",
           "--shards", "1", "--io", args.io, "--only-summary", "--csv", prefix]
    out_path = os.path.join(workdir, f"idle-{users}.out")
    print(f"  -u {users} -r {args.spawn_rate} -t {run_s}s ...", end="", flush=True)
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    result = {"users": users, "cmd": " ".join(cmd)}
    try:
        last, since, conns = None, None, 0
        deadline = t0 + args.settle + spawn_s + 25  # sample before -t runs out
        while True:
            time.sleep(0.25)
            if proc.poll() is not None:
                raise compare.RunError(f"locusta exited {proc.returncode} before the plateau:\n"
                                       f"{compare.tail(out_path)}")
            now = time.monotonic()
            vm = vm_status(proc.pid)
            if vm is None:
                continue
            conns = established(port)
            ready = now - t0 >= spawn_s and conns >= users
            if not ready or vm[0] != last:
                last, since = vm[0], now
            elif now - since >= args.settle:
                result.update(rss_kb=vm[0], hwm_kb=vm[1], connections=conns,
                              seconds_to_plateau=round(now - t0, 1))
                break
            if now > deadline:
                raise compare.RunError(
                    f"no plateau within {deadline - t0:.0f} s: {conns} of {users} connections "
                    f"established, VmRSS {vm[0]} KB\n{compare.tail(out_path)}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                result["note"] = "did not exit within 30 s of SIGTERM; killed"
    result["exit_code"] = proc.returncode
    try:
        with open(prefix + "_stats.csv", newline="") as f:
            row = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"][-1]
        result["requests"], result["failures"] = int(row["Request Count"]), int(row["Failure Count"])
    except (OSError, IndexError, KeyError, ValueError):
        result["requests"] = result["failures"] = None
    print(f" VmRSS {result['rss_kb']:,} KB (peak {result['hwm_kb']:,} KB), "
          f"{result['connections']:,} connections after {result['seconds_to_plateau']} s; "
          f"exit {result['exit_code']}, requests {result['requests']}, failures {result['failures']}",
          flush=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(compare.ROOT, "target", "release", "locusta"),
                   help="locusta binary (default: target/release/locusta)")
    p.add_argument("-u", "--users", type=int, default=10000, help="users in the big run (default 10000)")
    p.add_argument("-r", "--spawn-rate", type=int, default=2000, help="users per second (default 2000)")
    p.add_argument("--io", default="uring", choices=("uring", "epoll", "auto"), help="locusta --io (default uring)")
    p.add_argument("--settle", type=float, default=STABLE_S,
                   help=f"seconds VmRSS must stay unchanged once all users are connected (default {STABLE_S:g})")
    p.add_argument("--target-cpu", type=int, help="CPU for nginx (default: first allowed)")
    p.add_argument("--load-cpu", type=int, help="CPU for locusta (default: second allowed, else the first)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.users < 2 or args.spawn_rate < 1:
        p.error("--users must be at least 2 and --spawn-rate at least 1")

    nginx = compare.which("nginx")
    if not nginx or not compare.which("taskset"):
        print("missing nginx or taskset. Install with:\n  apt-get install -y nginx-light", file=sys.stderr)
        return 2
    if not (os.path.isfile(args.bin) and os.access(args.bin, os.X_OK)):
        print(f"locusta binary not found at {args.bin}: run `cargo build --release` first or pass --bin",
              file=sys.stderr)
        return 2
    args.bin = os.path.abspath(args.bin)

    # Both locusta and the nginx worker hold one descriptor per user (separate
    # processes, separate limits); both inherit this process's limit.
    need = args.users + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need and (hard == resource.RLIM_INFINITY or hard > soft):
        soft = need if hard == resource.RLIM_INFINITY else min(hard, max(need, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < need:
        print(f"open-files limit {soft} is too low for {args.users} users (need about {need} per "
              f"process): raise `ulimit -n` or lower --users", file=sys.stderr)
        return 2
    worker_connections = max(16384, args.users + 1024)

    cpus = sorted(os.sched_getaffinity(0))
    args.target_cpu = cpus[0] if args.target_cpu is None else args.target_cpu
    if args.load_cpu is None:
        others = [c for c in cpus if c != args.target_cpu]
        args.load_cpu = others[0] if others else args.target_cpu

    busy = compare.busy_cpus()
    if busy is not None and busy > 0.25:
        print(f"warning: {busy:.1f} CPUs busy before starting: something else is running; "
              "the spawn will be slower (RSS should not change much)")
    workdir = tempfile.mkdtemp(prefix="locusta-rss-")
    nginx_proc, results = None, []
    try:
        try:
            nginx_proc, url = compare.start_nginx(nginx, args.target_cpu, workdir, worker_connections)
        except compare.RunError as e:
            print(f"cannot start nginx: {e}\n(files kept in {workdir})", file=sys.stderr)
            return 1
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        print(f"nginx {url} on CPU {args.target_cpu} (worker_connections {worker_connections}, "
              f"open files {soft}); locusta on CPU {args.load_cpu}, {args.io}, files in {workdir}",
              flush=True)
        for users in (1, args.users):
            try:
                results.append(measure(args, users, url, port, workdir))
            except compare.RunError as e:
                print(f" FAILED\n{e}\n(files kept in {workdir})", file=sys.stderr)
                return 1
    finally:
        compare.stop_nginx(nginx_proc)

    one, many = results
    per_user = (many["rss_kb"] - one["rss_kb"]) / (many["users"] - one["users"])
    verdict = "meets" if per_user <= TARGET_KB else "MISSES"
    print(f"\nVmRSS at 1 user:          {one['rss_kb']:>9,} KB")
    print(f"VmRSS at {many['users']:,} users: {many['rss_kb']:>9,} KB")
    print(f"per user: ({many['rss_kb']:,} - {one['rss_kb']:,}) / {many['users'] - 1:,} = "
          f"{per_user:.2f} KB  ({verdict} the <= {TARGET_KB} KB target)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"io": args.io, "spawn_rate": args.spawn_rate, "runs": results,
                       "kb_per_user": per_user}, f, indent=2)
        print(f"wrote {args.json}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; nginx and locusta were stopped", file=sys.stderr)
        sys.exit(130)
