#!/usr/bin/env python3
"""Side-by-side CPU per request: wrk vs locusta (raw mode on io_uring and epoll, Lua script) and Locust.

One nginx worker pinned to one CPU serves a fixed 200-byte body on
127.0.0.1 (benches/nginx.conf); each load generator in turn is pinned to
another CPU and runs for the same time with the same number of connections.
For each run the generator's own CPU time (user + sys, from wait4's rusage)
is divided by the requests it completed. On a 2-core box the target shares
the machine, so requests/s measures nginx as much as the generator; CPU per
request is the figure to compare, and the ratio to wrk is the headline.

Tools: wrk; locusta raw mode (`uring`, `epoll`: the URL on the command line);
locusta running benches/lua/get.lua (`lua`: one Lua task doing one GET, no
think time, io_uring); Locust's FastHttpUser running benches/locust_get.py
(`locust`: the same script shape, one locust process; only when the `locust`
command or module is installed, `pip install locust`); oha (`oha`: `-z
DURATION -c CONNECTIONS --no-tui` on the same CPU, when installed: `cargo
install oha --locked`; its requests aborted at the deadline are not errors).

A realistic script (opt in): `shop` runs benches/lua/shop.lua (the shop
example's mix with no think time: login with a cookie and a token, JSON
bodies, `name=`, `catch_response`, a 1 KB JSON list parsed by the script)
against the shop locations of benches/nginx.conf; `locust-shop` runs its
FastHttpUser twin, benches/locust_shop.py. Their `vs wrk` is against wrk's
plain GET of the same server (wrk cannot run the mix).

Pipelined mode (`--pipeline 1,16`): wrk with benches/pipeline.lua (wrk's classic
script: N requests written at once, N responses read) against `locusta --pipeline N`
(uring, epoll), at each depth; depth 1 is plain wrk and plain locusta. It prints
requests per CPU-second for each, and each depth's gain over the first depth.

TLS (opt in with --tools): `wrk-tls`, `uring-tls`, `epoll-tls` run the same
load over https keep-alive; `wrk-tls-close`, `uring-tls-close`,
`epoll-tls-close` against a second TLS server that closes every connection
after one response (`keepalive_requests 1`: a handshake per request, the
same for every tool, with no request header to add). The certificate is a self-signed ECDSA P-256 one
made at start with `openssl req` (locusta gets it as --ca-cert; wrk does not
verify). nginx logs protocol, cipher suite and session reuse per request on
the TLS servers only, and each run's line says what its connections
negotiated (wrk: OpenSSL; locusta: rustls with ring).

Python 3.8+ standard library only. Needs nginx, wrk and taskset
(`apt-get install -y wrk nginx-light`) and a release build of locusta
(`cargo build --release`). See benches/README.md.
"""

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TLS_TOOLS = ("wrk-tls", "uring-tls", "epoll-tls", "wrk-tls-close", "uring-tls-close", "epoll-tls-close")
SHOP_TOOLS = ("shop", "locust-shop")
TOOLS = ("wrk", "uring", "epoll", "lua", "oha", "locust") + SHOP_TOOLS + TLS_TOOLS
# oha runs when installed (skipped with a note otherwise); locust: opt in with --tools (it is slow)
DEFAULT_TOOLS = ("wrk", "uring", "epoll", "lua", "oha")
LUA_SCRIPT = os.path.join(HERE, "lua", "get.lua")
LOCUST_SCRIPT = os.path.join(HERE, "locust_get.py")
SHOP_SCRIPT = os.path.join(HERE, "lua", "shop.lua")
LOCUST_SHOP_SCRIPT = os.path.join(HERE, "locust_shop.py")
PIPELINE_SCRIPT = os.path.join(HERE, "pipeline.lua")
PIPELINE_TOOLS = ("wrk", "uring", "epoll")  # raw mode only: a Lua script writes one request at a time
INSTALL_HINT = "apt-get install -y wrk nginx-light"


class RunError(Exception):
    """A measurement that produced no number; the message says why."""


def which(name):
    # nginx lives in /usr/sbin, which is not on every user's PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).rstrip()
    except OSError:
        return ""


def make_cert(workdir):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 (not a CA: rustls
    refuses a CA certificate as a server's own); returns (cert, key) paths."""
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1",
                        "-addext", "basicConstraints=critical,CA:FALSE"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RunError(f"openssl req failed:\n{r.stderr.strip()}")
    return cert, key


def tls_servers(tls_port, close_port, workdir):
    """Two TLS server blocks serving the same body: keep-alive, and one
    response per connection. Tickets on (nginx's default), a log line per
    request with what was negotiated."""
    body = ('"locusta compare target: a fixed 200-byte body served from memory by one nginx worker, '
            'so that what the benchmark measures is the load generator\'s CPU per request. '
            '0123456789abcdefghijklmnopqrstuvwxyz\\n"')
    blocks = [f"""    log_format tlsinfo '$server_port $ssl_protocol $ssl_cipher/$ssl_curve $ssl_session_reused $connection';"""]
    for port, extra in ((tls_port, ""), (close_port, "keepalive_requests 1;")):
        blocks.append(f"""    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {workdir}/cert.pem;
        ssl_certificate_key {workdir}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:TLS:10m;
        access_log {workdir}/tls.log tlsinfo buffer=64k flush=1s;
        {extra}
        default_type text/plain;
        location / {{ return 200 {body}; }}
    }}""")
    return "\n".join(blocks)


def nginx_config(nginx, port, workdir, worker_connections=8192, tls=None):
    with open(os.path.join(HERE, "nginx.conf")) as f:
        text = (f.read().replace("@PORT@", str(port)).replace("@DIR@", workdir)
                .replace("@WORKER_CONNECTIONS@", str(worker_connections)))
    if tls:
        # Into the http block: before its closing brace, the file's last.
        end = text.rstrip().rfind("}")
        text = text[:end] + tls_servers(*tls, workdir) + "\n" + text[end:]
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    lines = []
    for line in text.splitlines():
        m = re.match(r"\s*(\w+)_temp_path\b", line)
        if m and m.group(1) != "client_body" and f"--without-http_{m.group(1)}_module" in built:
            continue  # directive unknown to this nginx build
        lines.append(line)
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start_nginx(nginx, cpu, workdir, worker_connections=8192, tls=None):
    """Start nginx pinned to `cpu` (None: not pinned); return (Popen, "http://127.0.0.1:PORT/").
    `tls`: (keep-alive port, close port) for the TLS servers too."""
    port = free_port()
    conf = nginx_config(nginx, port, workdir, worker_connections, tls)
    log = os.path.join(workdir, "error.log")
    out = open(os.path.join(workdir, "nginx.out"), "w")
    cmd = ([] if cpu is None else ["taskset", "-c", str(cpu)]) + [
        nginx, "-p", workdir + "/", "-e", log, "-c", conf]
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"nginx exited with status {proc.returncode}:\n"
                           f"{tail(out.name)}\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.05)
    raise RunError(f"nginx did not listen on 127.0.0.1:{port} within 10 s:\n{tail(log)}")


def stop_nginx(proc):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # master and worker
        proc.wait(timeout=5)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def busy_cpus(sample=1.0):
    """How many CPUs' worth of work the machine did over `sample` seconds (from /proc/stat)."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        t0, i0 = read()
        time.sleep(sample)
        t1, i1 = read()
    except (OSError, ValueError, IndexError):
        return None
    total = t1 - t0
    return (total - (i1 - i0)) / total * os.cpu_count() if total else None


def group_cpu(pgid):
    """CPU seconds (user+sys) used so far by the processes of a process group (nginx)."""
    total, tick = 0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after "comm)": state, ppid, pgrp, ...; utime, stime = 14, 15
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def run_measured(cmd, workdir, name, timeout):
    """Run cmd; return (exit code, CPU seconds, output path). CPU from wait4's rusage."""
    out_path = os.path.join(workdir, name + ".out")
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() > deadline:
                raise RunError(f"{name} did not finish within {timeout:.0f} s; killed.\n{tail(out_path)}")
            time.sleep(0.05)
    except BaseException:  # timeout, Ctrl-C, SIGTERM: leave no generator running
        proc.kill()
        os.wait4(proc.pid, 0)
        proc.returncode = -9
        raise
    code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    proc.returncode = code  # already reaped: keep Popen from waiting again
    return code, ru.ru_utime + ru.ru_stime, out_path


def measure_wrk(wrk, args, url, workdir, rep, depth=1):
    cmd = ["taskset", "-c", str(args.load_cpu), wrk, "-t1", f"-c{args.connections}",
           f"-d{args.duration}s", url]
    if depth > 1:
        cmd[-1:] = ["-s", PIPELINE_SCRIPT, url, "--", str(depth)]
    code, cpu, out = run_measured(cmd, workdir, f"wrk-{depth}-{rep}", args.duration + 30)
    with open(out) as f:
        text = f.read()
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", text)
    if code != 0 or not m:
        raise RunError(f"wrk exited {code} without a request count:\n{text.strip()}")
    secs = float(m.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    errors = 0
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if se:
        errors += sum(int(x) for x in se.groups())
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if n2:
        errors += int(n2.group(1))
    return {"requests": int(m.group(1)), "seconds": secs, "cpu_s": cpu, "errors": errors}


def measure_oha(oha, args, url, workdir, rep):
    """oha on one CPU, as wrk: -z DURATION -c CONNECTIONS, no TUI; counts from its JSON summary."""
    cmd = ["taskset", "-c", str(args.load_cpu), oha, "-z", f"{args.duration}s",
           "-c", str(args.connections), "--no-tui", "--output-format", "json", url]
    code, cpu, out = run_measured(cmd, workdir, f"oha-{rep}", args.duration + 30)
    with open(out) as f:
        text = f.read()
    try:
        report = json.loads(text[text.index("{"):])
        codes = report.get("statusCodeDistribution") or {}
        ok = sum(n for c, n in codes.items() if c.startswith(("2", "3")))
        # At the deadline oha aborts the requests in flight (one per
        # connection) and lists them as errors: they are not the target's.
        aborted = {k: n for k, n in (report.get("errorDistribution") or {}).items()
                   if k != "aborted due to deadline"}
        errors = sum(codes.values()) - ok + sum(aborted.values())
        secs = float(report["summary"]["total"])
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"oha exited {code} without a JSON summary ({e}):\n{text[-2000:].strip()}")
    if code != 0:
        raise RunError(f"oha exited {code}:\n{text[-2000:].strip()}")
    # Requests that ended (oha cuts in-flight ones at the deadline: not counted).
    return {"requests": sum(codes.values()), "seconds": secs, "cpu_s": cpu, "errors": errors}


def locust_command():
    """How to run Locust here: the `locust` script, else `python3 -m locust`, else None."""
    exe = shutil.which("locust")
    if exe:
        return [exe]
    import importlib.util
    if importlib.util.find_spec("locust") is not None:
        return [sys.executable, "-m", "locust"]
    return None


def measure_locusta(driver, args, url, workdir, rep, extra=(), tag=""):
    prefix = os.path.join(workdir, f"run-{driver}{tag}-{rep}")
    c = str(args.connections)
    cmd = ["taskset", "-c", str(args.load_cpu), args.bin, "--headless", "-u", c, "-r", c,
           "-t", f"{args.duration}s", "--shards", "1", "--io", driver, "--only-summary",
           "--csv", prefix, *extra, url]
    return measure_csv(cmd, f"locusta --io {driver}", prefix, args, workdir,
                       f"locusta-{driver}{tag}-{rep}")


def tls_log_size(workdir):
    try:
        return os.path.getsize(os.path.join(workdir, "tls.log"))
    except OSError:
        return 0


def tls_negotiated(workdir, since):
    """What the TLS requests since byte `since` of nginx's log negotiated:
    'TLSv1.3 TLS_AES_256_GCM_SHA384 (reused 97%)'. nginx flushes its log
    buffer every second, so wait for that first."""
    time.sleep(1.5)
    counts, reused, total, conns, conns_reused = {}, 0, 0, set(), set()
    try:
        with open(os.path.join(workdir, "tls.log"), errors="replace") as f:
            f.seek(since)
            for line in f:
                parts = line.split()
                if len(parts) != 5:
                    continue
                conns.add(parts[4])
                if parts[3] == "r":
                    conns_reused.add(parts[4])
                key = f"{parts[1]} {parts[2]}"
                counts[key] = counts.get(key, 0) + 1
                total += 1
                reused += parts[3] == "r"
    except OSError:
        return "no TLS log"
    if not total:
        return "no TLS requests logged"
    main = max(counts, key=counts.get)
    others = "" if len(counts) == 1 else f" (+{len(counts) - 1} other)"
    return (f"{main}{others}; {len(conns)} connections, {len(conns_reused)} of them resumed; "
            f"{reused / total:.0%} of requests on resumed sessions")


def measure_lua(args, url, workdir, rep, script=LUA_SCRIPT, tag="lua"):
    prefix = os.path.join(workdir, f"run-{tag}-{rep}")
    c = str(args.connections)
    cmd = ["taskset", "-c", str(args.load_cpu), args.bin, "-f", script, "-H", url.rstrip("/"),
           "--headless", "-u", c, "-r", c, "-t", f"{args.duration}s", "--shards", "1",
           "--io", "uring", "--only-summary", "--csv", prefix]
    return measure_csv(cmd, f"locusta -f {os.path.basename(script)}", prefix, args, workdir,
                       f"locusta-{tag}-{rep}")


def measure_locust(args, url, workdir, rep, script=LOCUST_SCRIPT, tag="locust"):
    prefix = os.path.join(workdir, f"run-{tag}-{rep}")
    c = str(args.connections)
    cmd = ["taskset", "-c", str(args.load_cpu), *args.locust, "-f", script, "--headless",
           "-u", c, "-r", c, "-t", f"{args.duration}s", "-H", url.rstrip("/"),
           "--csv", prefix, "--only-summary"]
    return measure_csv(cmd, "locust", prefix, args, workdir, f"{tag}-{rep}")


def measure_csv(cmd, label, prefix, args, workdir, name):
    """Run a generator that writes Locust's PREFIX_stats.csv; requests from its Aggregated row."""
    stats = prefix + "_stats.csv"
    t0 = time.monotonic()
    code, cpu, out = run_measured(cmd, workdir, name, args.duration + 60)
    wall = time.monotonic() - t0
    if not os.path.exists(stats):
        raise RunError(f"{label} exited {code} and wrote no {stats}:\n{tail(out)}")
    with open(stats, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    try:
        row = rows[-1]
        requests = int(row["Request Count"])
        failures = int(row.get("Failure Count") or 0)
    except (IndexError, KeyError, ValueError) as e:
        raise RunError(f"{stats} has no usable Aggregated row ({e!r}); {label} exited {code}:\n{tail(out)}")
    if code != 0 and failures == 0:
        raise RunError(f"{label} exited {code} with no failed requests:\n{tail(out)}")
    if requests == 0:
        raise RunError(f"{label} exited {code} and completed no requests:\n{tail(out)}")
    # Requests/s from the CSV when present (run time without start-up), else nominal.
    try:
        secs = requests / float(row["Requests/s"])
    except (KeyError, ValueError, ZeroDivisionError):
        secs = min(float(args.duration), wall)
    return {"requests": requests, "seconds": secs, "cpu_s": cpu, "errors": failures}


def summarize(runs):
    """The run with the median CPU per request (the lower middle one for an even
    count, so every column comes from one real run), plus the spread."""
    for r in runs:
        r["us_per_req"] = r["cpu_s"] / r["requests"] * 1e6 if r["requests"] else float("inf")
        r["req_per_s"] = r["requests"] / r["seconds"] if r["seconds"] else 0.0
    ordered = sorted(runs, key=lambda r: r["us_per_req"])
    med = dict(ordered[(len(ordered) - 1) // 2])
    med["us_min"], med["us_max"] = ordered[0]["us_per_req"], ordered[-1]["us_per_req"]
    return med


def ratio_to_wrk(summary, t):
    """CPU/request over wrk's on the same server (TLS runs: wrk over the same TLS server;
    pipelined runs, key "tool@depth": wrk at the same depth)."""
    t, _, depth = t.partition("@")
    if depth:  # pipelined: wrk at the same depth
        ref, t = f"wrk@{depth}", f"{t}@{depth}"
    else:
        ref = "wrk" if t not in TLS_TOOLS else ("wrk-tls-close" if t.endswith("-close") else "wrk-tls")
    if t not in summary or ref not in summary:
        return None
    return summary[t]["us_per_req"] / summary[ref]["us_per_req"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "locusta"),
                   help="locusta binary (default: target/release/locusta)")
    p.add_argument("-c", "--connections", type=int, default=64,
                   help="connections (wrk -c) = users (locusta -u) (default 64)")
    p.add_argument("-d", "--duration", type=int, default=10, help="seconds per run (default 10)")
    p.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported (default 3)")
    p.add_argument("--tools", default=",".join(DEFAULT_TOOLS),
                   help=f"comma-separated subset of {','.join(TOOLS)} (default: {','.join(DEFAULT_TOOLS)})")
    p.add_argument("--target-cpu", type=int, help="CPU for nginx (default: first allowed)")
    p.add_argument("--load-cpu", type=int, help="CPU for the generator (default: second allowed)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument("--pipeline", metavar="DEPTHS",
                   help="pipelined mode: comma-separated depths, e.g. 1,16 (tools: wrk,uring,epoll)")
    args = p.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop nginx and the generator.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad or not tools:
        p.error(f"--tools: unknown {bad}; choose from {','.join(TOOLS)}")
    if args.repeat < 1 or args.duration < 1 or args.connections < 1:
        p.error("--repeat, --duration and --connections must be at least 1")
    depths = [1]
    if args.pipeline:
        try:
            depths = [int(d) for d in args.pipeline.split(",") if d.strip()]
        except ValueError:
            p.error(f"--pipeline: {args.pipeline!r} is not a list of depths (e.g. 1,16)")
        if not depths or any(d < 1 or d > 1024 for d in depths):
            p.error("--pipeline: depths are 1 to 1024")
        if args.tools == ",".join(DEFAULT_TOOLS):
            tools = list(PIPELINE_TOOLS)
        if any(t not in PIPELINE_TOOLS for t in tools):
            p.error(f"--pipeline: tools are {','.join(PIPELINE_TOOLS)} (pipelining is raw mode)")
        if not os.path.isfile(PIPELINE_SCRIPT):
            print(f"missing {PIPELINE_SCRIPT}", file=sys.stderr)
            return 2

    nginx, wrk = which("nginx"), which("wrk")
    if not nginx or not wrk or not which("taskset"):
        missing = [n for n, v in (("nginx", nginx), ("wrk", wrk), ("taskset", which("taskset"))) if not v]
        print(f"missing: {', '.join(missing)}. Install with:\n  {INSTALL_HINT}", file=sys.stderr)
        return 2
    oha = which("oha")
    if "oha" in tools and not oha:
        print("note: skipping oha: not installed (cargo install oha --locked)")
        tools.remove("oha")
    if {"locust", "locust-shop"} & set(tools):
        args.locust = locust_command()
        if args.locust is None:
            print("note: skipping locust: neither the `locust` command nor the module is installed "
                  "(pip install locust)")
            tools = [t for t in tools if not t.startswith("locust")]
            if not tools:
                return 2
    scripts = {"lua": LUA_SCRIPT, "locust": LOCUST_SCRIPT, "shop": SHOP_SCRIPT,
               "locust-shop": LOCUST_SHOP_SCRIPT}
    for script in [scripts[t] for t in tools if t in scripts]:
        if not os.path.isfile(script):
            print(f"missing {script}", file=sys.stderr)
            return 2
    if any(t in ("uring", "epoll", "lua", "shop") for t in tools):
        if not (os.path.isfile(args.bin) and os.access(args.bin, os.X_OK)):
            print(f"locusta binary not found at {args.bin}: run `cargo build --release` first, "
                  f"pass --bin PATH, or measure wrk alone with --tools wrk", file=sys.stderr)
            return 2
        args.bin = os.path.abspath(args.bin)

    cpus = sorted(os.sched_getaffinity(0))
    args.target_cpu = cpus[0] if args.target_cpu is None else args.target_cpu
    if args.load_cpu is None:
        others = [c for c in cpus if c != args.target_cpu]
        if not others:
            print("need two CPUs (one for nginx, one for the generator); this process may use "
                  f"only {cpus}", file=sys.stderr)
            return 2
        args.load_cpu = others[0]

    # What runs: a tool at a depth ("wrk@16"); without --pipeline, each tool once.
    runs = [f"{t}@{d}" if args.pipeline else t for d in depths for t in tools]
    busy = busy_cpus()
    if busy is not None and busy > 0.25:
        print(f"warning: {busy:.1f} CPUs busy before starting: something else is running; "
              "numbers will be noisy")
    print(f"target nginx on CPU {args.target_cpu}, generators on CPU {args.load_cpu}; "
          f"{args.connections} connections, {args.duration} s x {args.repeat} per tool", flush=True)
    results, failed = {t: [] for t in runs}, {}
    nginx_proc = None
    workdir = tempfile.mkdtemp(prefix="locusta-compare-")
    try:
        tls = None
        if set(tools) & set(TLS_TOOLS):
            try:
                cert, _ = make_cert(workdir)
            except (RunError, OSError) as e:
                print(f"cannot make a certificate (needs openssl): {e}", file=sys.stderr)
                return 1
            tls = (free_port(), free_port())
        try:
            nginx_proc, url = start_nginx(nginx, args.target_cpu, workdir,
                                          max(8192, args.connections + 1024), tls)
        except RunError as e:
            print(f"cannot start nginx: {e}\n(files kept in {workdir})", file=sys.stderr)
            return 1
        print(f"nginx {url} (pid {nginx_proc.pid}, files in {workdir})", flush=True)
        for rep in range(args.repeat):  # interleaved, so drift hits every tool alike
            for key in runs:
                if key in failed:
                    continue
                tool, _, depth = key.partition("@")
                depth = int(depth or 1)
                print(f"  run {rep + 1}/{args.repeat}: {key} ...", end="", flush=True)
                target_cpu0 = group_cpu(nginx_proc.pid)
                log0 = tls_log_size(workdir)
                try:
                    if tool in TLS_TOOLS:
                        port = tls[1] if tool.endswith("-close") else tls[0]
                        turl = f"https://127.0.0.1:{port}/"
                        base_tool = tool.split("-")[0]
                        if base_tool == "wrk":
                            r = measure_wrk(wrk, args, turl, workdir, f"{tool}-{rep}")
                        else:
                            r = measure_locusta(base_tool, args, turl, workdir, rep,
                                                ("--ca-cert", cert), tool[len(base_tool):])
                        r["tls"] = tls_negotiated(workdir, log0)
                    elif tool == "wrk":
                        r = measure_wrk(wrk, args, url, workdir, rep, depth)
                    elif tool == "lua":
                        r = measure_lua(args, url, workdir, rep)
                    elif tool == "locust":
                        r = measure_locust(args, url, workdir, rep)
                    elif tool == "shop":
                        r = measure_lua(args, url, workdir, rep, SHOP_SCRIPT, "shop")
                    elif tool == "locust-shop":
                        r = measure_locust(args, url, workdir, rep, LOCUST_SHOP_SCRIPT, "locust-shop")
                    elif tool == "oha":
                        r = measure_oha(oha, args, url, workdir, rep)
                    else:
                        piped = ("--pipeline", str(depth)) if depth > 1 else ()
                        r = measure_locusta(tool, args, url, workdir, rep, piped, f"-p{depth}")
                except RunError as e:
                    print(" FAILED")
                    failed[key] = str(e)
                    continue
                r["target_cpu_s"] = group_cpu(nginx_proc.pid) - target_cpu0
                results[key].append(r)
                print(f" {r['requests']} requests, {r['cpu_s']:.2f} s CPU"
                      + (f"; {r['tls']}" if "tls" in r else ""), flush=True)
    finally:
        stop_nginx(nginx_proc)

    sys.stdout.flush()
    for tool, err in failed.items():
        print(f"\n{tool} failed: {err}", file=sys.stderr)

    summary = {t: summarize(rs) for t, rs in results.items() if rs}
    names = {"wrk": ("wrk", "epoll"), "uring": ("locusta", "io_uring"), "epoll": ("locusta", "epoll"),
             "lua": ("locusta Lua", "io_uring"), "locust": ("Locust", "FastHttpUser"),
             "shop": ("locusta shop.lua", "io_uring"), "locust-shop": ("Locust shop", "FastHttpUser"),
             "oha": ("oha", "tokio"),
             "wrk-tls": ("wrk https", "epoll"), "uring-tls": ("locusta https", "io_uring"),
             "epoll-tls": ("locusta https", "epoll"), "wrk-tls-close": ("wrk https close", "epoll"),
             "uring-tls-close": ("locusta https close", "io_uring"),
             "epoll-tls-close": ("locusta https close", "epoll")}
    header = ("tool", "driver", "requests", "req/s", "CPU s", "µs CPU/req", "(min–max)", "vs wrk",
              "errors", "nginx CPU s")
    rows = []
    for key in runs:
        t, _, depth = key.partition("@")
        s = summary.get(key)
        label = (names[t][0] + (f" pipeline {depth}" if depth else ""), names[t][1])
        if s is None:
            rows.append((*label, "failed", "", "", "", "", "", "", ""))
            continue
        r = ratio_to_wrk(summary, key)
        ratio = f"{r:.2f}x" if r is not None else "n/a"
        rows.append((*label, str(s["requests"]), f"{s['req_per_s']:,.0f}", f"{s['cpu_s']:.2f}",
                     f"{s['us_per_req']:.2f}", f"{s['us_min']:.2f}–{s['us_max']:.2f}", ratio,
                     str(s["errors"]), f"{s['target_cpu_s']:.2f}"))
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    print()
    for r in [header] + rows:
        print("  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print(f"\nmedian of {args.repeat} runs; CPU s = the generator's user+sys time (wait4 rusage); "
          "errors = wrk socket errors + non-2xx, locusta/Locust Failure Count;\n"
          f"nginx CPU s near {args.duration} means the target was the bottleneck (req/s is nginx's, "
          "not the generator's)")
    if args.pipeline:
        print("\nrequests per CPU-second (the generator's), and the gain over depth "
              f"{depths[0]} (issue target for locusta: depth 16 >= 3x depth 1)")
        for t in tools:
            first = summary.get(f"{t}@{depths[0]}")
            for d in depths:
                s = summary.get(f"{t}@{d}")
                if s is None:
                    print(f"  {names[t][0]:8} {names[t][1]:9} depth {d:4}: failed")
                    continue
                per_cpu = 1e6 / s["us_per_req"]
                gain = f"{first['us_per_req'] / s['us_per_req']:.2f}x" if first else "n/a"
                print(f"  {names[t][0]:8} {names[t][1]:9} depth {d:4}: {per_cpu:12,.0f} req/CPU-s  {gain}")

    if args.json:
        doc = {
            "config": {"connections": args.connections, "duration_s": args.duration,
                       "repeat": args.repeat, "target_cpu": args.target_cpu,
                       "load_cpu": args.load_cpu, "bin": args.bin if {"uring", "epoll", "lua", "shop"} & set(tools) else None,
                       "body_bytes": 200},
            "machine": {"kernel": platform.release(), "cpus": os.cpu_count(),
                        "nginx": subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()},
            "results": [{"tool": names[k.partition("@")[0]][0],
                         "driver": names[k.partition("@")[0]][1],
                         "pipeline": int(k.partition("@")[2] or 1), "median": summary.get(k),
                         "runs": results[k], "error": failed.get(k),
                         "ratio_to_wrk": ratio_to_wrk(summary, k)}
                        for k in runs],
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")
    if failed:
        print(f"(run outputs kept in {workdir})", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; nginx and the generator were stopped", file=sys.stderr)
        sys.exit(130)
