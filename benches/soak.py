#!/usr/bin/env python3
"""Soak: RSS of locusta over a long run with think time (issue 9, item 13).

Runs benches/lua/think.lua (1,000 users by default, one GET then a 1 s
wait) against a small asyncio HTTP server on 127.0.0.1 (started here; no
nginx needed), samples locusta's VmRSS (/proc/PID/status) every 5 s, and
prints RSS at 1 min and at the end, and their ratio. Pass: RSS at the end
within 10 % of RSS at 1 min. The full soak is `--minutes 60`; a short
check is `--minutes 5`.

    cargo build --release
    python3 benches/soak.py --minutes 60 [--users 1000] [--bin target/release/locusta]

Python 3.8+ standard library only.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPT = os.path.join(HERE, "lua", "think.lua")
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world"


def serve(port_box, ready):
    async def handle(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(REPLY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        port_box.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "locusta"))
    args = ap.parse_args()

    port_box, ready = [], threading.Event()
    threading.Thread(target=serve, args=(port_box, ready), daemon=True).start()
    if not ready.wait(10):
        sys.exit("the test server did not start")
    host = f"http://127.0.0.1:{port_box[0]}"
    total = int(args.minutes * 60)
    cmd = [args.bin, "-f", SCRIPT, "-H", host, "--headless", "--only-summary",
           "-u", str(args.users), "-r", str(max(1, args.users // 2)), "-t", f"{total + 5}s",
           "--shards", str(args.shards)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    at_1min = None
    last = None
    try:
        while time.monotonic() - start < total:
            time.sleep(5)
            elapsed = time.monotonic() - start
            last = rss_kb(proc.pid)
            if last is None:
                sys.exit("locusta exited early")
            print(f"{elapsed:7.0f} s  RSS {last / 1024:8.1f} MB", flush=True)
            if at_1min is None and elapsed >= 60:
                at_1min = last
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if at_1min is None or last is None:
        sys.exit("run shorter than a minute: nothing to compare")
    ratio = last / at_1min
    print(f"RSS at 1 min {at_1min / 1024:.1f} MB, at end {last / 1024:.1f} MB, ratio {ratio:.3f}")
    sys.exit(0 if ratio <= 1.10 else 1)


if __name__ == "__main__":
    main()
