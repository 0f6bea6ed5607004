#!/usr/bin/env python3
"""User-space instructions per request of raw mode, for A/B of binaries.

Each binary runs under `valgrind --tool=callgrind` (pinned to CPU 1, nginx
from benches/nginx.conf pinned to CPU 0, as compare.py starts it) for
`-t 2s` and `-t 6s` with `-u 16 -r 1000 --shards 1 --io epoll` (valgrind
3.19 does not run io_uring; everything above the driver is shared). Two
figures per binary:

- per request, whole process: (Ir of the 6 s run - Ir of the 2 s run) /
  (their difference in requests). Removes start-up, but the per-second
  work (stats ticks, timers) makes it move when throughput under valgrind
  does: +-10 % on a busy machine.
- per request, the raw loop: the inclusive Ir of `run_raw_user`'s future in
  the 6 s run / its requests (from callgrind_annotate). Deterministic to a
  few instructions: use it to decide about a change inside the loop.

Usage: python3 benches/callgrind_raw.py BIN [BIN ...]
Needs valgrind (callgrind_annotate), nginx, taskset; Python 3.8+ stdlib.
"""

import csv
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (start_nginx / stop_nginx)


def run(binary, secs, workdir, tag, url):
    prefix = os.path.join(workdir, f"cg-{tag}-{secs}")
    out = prefix + ".callgrind"
    cmd = ["taskset", "-c", "1", "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
           binary, "--headless", "-u", "16", "-r", "1000", "--shards", "1", "--io", "epoll",
           "-t", f"{secs}s", "--only-summary", "--csv", prefix, url]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False)
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
    with open(prefix + "_stats.csv", newline="") as f:
        row = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"][-1]
    return out, total, int(row["Request Count"]), int(row["Failure Count"])


def loop_ir(callgrind_out):
    """Inclusive Ir of the raw loop's future."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", callgrind_out],
                          capture_output=True, text=True, check=True).stdout
    for line in text.splitlines():
        if re.search(r"run_raw_user::\{\{closure\}\} \[", line):
            return int(line.split()[0].replace(",", ""))
    raise SystemExit(f"no run_raw_user in {callgrind_out}")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    workdir = tempfile.mkdtemp(prefix="locusta-callgrind-")
    nginx_bin = compare.which("nginx")
    if not nginx_bin:
        raise SystemExit("needs nginx (apt-get install -y nginx-light)")
    nginx, url = compare.start_nginx(nginx_bin, 0, workdir)
    try:
        for i, binary in enumerate(sys.argv[1:]):
            _, ir2, req2, fail2 = run(binary, 2, workdir, i, url)
            out6, ir6, req6, fail6 = run(binary, 6, workdir, i, url)
            if fail2 or fail6 or req6 <= req2:
                raise SystemExit(f"{binary}: failures {fail2}/{fail6}, requests {req2}/{req6}")
            print(f"{binary}: {(ir6 - ir2) / (req6 - req2):,.0f} Ir/request (process, 6 s - 2 s), "
                  f"{loop_ir(out6) / req6:,.0f} Ir/request (raw loop); "
                  f"requests {req2:,} / {req6:,}", flush=True)
    finally:
        compare.stop_nginx(nginx)


if __name__ == "__main__":
    main()
