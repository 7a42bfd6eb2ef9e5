#!/usr/bin/env python3
"""The players' figures of docs/cluster.md ("Players on a cluster: figures"): `astroboids
loadgen` against the single server (`serve`) and against a gateway of a 2-shard cluster
(`cluster up`), in interleaved rounds, plus runs where a shard process or a gateway is killed
(SIGKILL) in the middle of the measurement. Build first:

    cargo build --release --bin astroboids

    python3 benches/gateway_figures.py [--clients 300] [--seconds 30] [--rounds 3]
        [--faults] [--out runs.jsonl]

Each run prints one JSON line (loadgen's report, the server's own tick figures when it prints
them, and what was killed when); the end prints medians per setup. Everything binds to
127.0.0.1 and lives in a temporary directory.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.path.abspath("./target/release/astroboids")


class Server:
    """`serve` or `cluster up`, started with its stdout read in the background."""

    def __init__(self, args, data):
        self.lines = []
        self.proc = subprocess.Popen(
            [BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=data, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix, count=1, timeout=180):
        until = time.time() + timeout
        while time.time() < until:
            found = [l[len(prefix):] for l in self.lines if l.startswith(prefix)]
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.lines[-10:]}")
            time.sleep(0.1)
        raise RuntimeError(f"no {prefix!r} line within {timeout} s: {self.lines[-10:]}")

    def pid_of(self, role):
        for line in self.lines:
            if line.startswith(role + ": pid "):
                return int(line.split()[2].rstrip(","))
        raise RuntimeError(f"no pid for {role}")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.reader.join(timeout=5)


def start(setup, data, clients, gateways=1):
    if setup == "serve":
        # As `loadgen` starts its own server: every bot comes from this one address.
        server = Server(["serve", "--data", os.path.join(data, "world"),
                         "--listen", "127.0.0.1:0", "--no-metrics", "--no-record",
                         "--max-connections-per-ip", str(clients + 16),
                         "--requests-per-ip-per-s", "100000",
                         "--password-jobs-per-ip", str(clients + 16)], data)
    else:
        server = Server(["cluster", "up", "--shards", "2", "--gateways", str(gateways),
                         "--nats-port", "0", "--etcd-port", "0", "--postgres-port", "0",
                         "--gateway-port", "0", "--data", os.path.join(data, "cluster"),
                         "--max-connections-per-ip", str(clients + 16),
                         "--requests-per-ip-per-s", "100000"], data)
    addrs = [l.split()[0] for l in server.wait_for("listening: ", count=gateways)]
    fingerprint = server.wait_for("fingerprint: ")[0].split()[0]
    return server, addrs, fingerprint


def loadgen(addrs, fingerprint, clients, seconds):
    out = subprocess.run(
        [BIN, "loadgen", "--server", ",".join(addrs), "--fingerprint", fingerprint,
         "--clients", str(clients), "--seconds", str(seconds), "--json"],
        capture_output=True, text=True, timeout=seconds + 900)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(setup, clients, seconds, kill=None):
    with tempfile.TemporaryDirectory(prefix="astroboids-gw-") as data:
        gateways = 2 if kill == "gateway-0" else 1
        server, addrs, fingerprint = start(setup, data, clients, gateways)
        killer = None
        killed = {}
        if kill:
            pid = server.pid_of(kill)

            def do_kill():
                # Setting the bots up takes a while: kill about a third into the measurement,
                # so that what follows (a client notices a dead gateway after its 8 s idle
                # timeout) is measured too.
                time.sleep(setup_s_estimate(clients) + seconds / 3)
                os.kill(pid, signal.SIGKILL)
                killed["at"] = time.time()
            killer = threading.Thread(target=do_kill, daemon=True)
            killer.start()
        began = time.time()
        report = loadgen(addrs, fingerprint, clients, seconds)
        server.stop()
        ticks = [l for l in server.lines if l.startswith("ticks: ")]
        return {
            "setup": setup, "kill": kill, "clients": clients, "seconds": seconds,
            "killed_after_s": (killed["at"] - began) if "at" in killed else None,
            **report, "server_tick_line": ticks[-1] if ticks else None,
        }


def setup_s_estimate(clients):
    # Registration hashes passwords (argon2, tens of ms each on 2 workers): 300 bots take
    # 6-11 s here.
    return 2 + clients * 0.02


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    runs = []
    plan = []
    for _ in range(args.rounds):
        plan += [("serve", None), ("cluster", None)]
    if args.faults:
        plan += [("cluster", "shard-1"), ("cluster", "gateway-0")]
    for setup, kill in plan:
        result = run(setup, args.clients, args.seconds, kill)
        print(json.dumps(result), flush=True)
        runs.append(result)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
    keys = ["snapshot_bytes_per_s_per_client_mean", "snapshot_delay_ms_p50",
            "snapshot_delay_ms_p99", "snapshot_gap_ms_p99", "snapshot_gap_ms_max", "errors",
            "reconnects"]
    print("| setup | runs | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 2) + "|")
    for setup in ["serve", "cluster"]:
        chosen = [r for r in runs if r["setup"] == setup and r["kill"] is None]
        if not chosen:
            continue
        cells = []
        for k in keys:
            values = [r.get(k) for r in chosen if r.get(k) is not None]
            cells.append(f"{statistics.median(values):.1f}" if values else "-")
        print(f"| {setup} | {len(chosen)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
