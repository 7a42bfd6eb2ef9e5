#!/usr/bin/env python3
"""The release-build figures of docs/cluster.md ("Figures"): `astroboids sim` side by side with
`astroboids cluster sim` on 1 and 2 shard processes, repeated in interleaved rounds (A B C A B C
...), medians printed as Markdown tables. Build first:

    cargo build --release --bin astroboids

    python3 benches/cluster_figures.py --out runs.jsonl [--rounds 5] [--quiet-wait 60]
        [--sets 10k,50k,miner,miner10k,borders,fanout]
    python3 benches/cluster_figures.py --summarise runs.jsonl
    python3 benches/cluster_figures.py --server-cpu [--rounds 2]   # nats-server CPU per message
    python3 benches/cluster_figures.py --model                     # the 100-shard model

Every run's JSON summary is appended to --out with the share of the cores other processes used
meanwhile (others' builds and tests on the same cores move the timings; the byte counts do not
depend on them); with --quiet-wait S a run first waits up to S seconds for the machine to be
less than 25% busy. Cluster runs of 10 ticks are made too: `ticks_per_s` of `cluster sim`
counts the wall time from the leader's start (the shards' start-up, the fleet's spawn and the
last checkpoint are in it), so the steady rate is (T - 10) / (wall(T) - wall(10)).
"""

import argparse
import collections
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

BIN = "./target/release/astroboids"
MINER = "assets/scripts/miner.ts"

SETS = {
    "10k": dict(ships=10_000, ticks=300, configs=[
        ("sim", []),
        ("cluster 1", ["--shards", "1"]),
        ("cluster 2 stripes:4", ["--shards", "2", "--assignment", "stripes:4"]),
        ("cluster 2 stripes:1", ["--shards", "2", "--assignment", "stripes:1"]),
    ]),
    "50k": dict(ships=50_000, ticks=120, configs=[
        ("sim", []),
        ("cluster 1", ["--shards", "1"]),
        ("cluster 2 stripes:4", ["--shards", "2", "--assignment", "stripes:4"]),
        ("cluster 2 stripes:1", ["--shards", "2", "--assignment", "stripes:1"]),
    ]),
    # A scripted ship's piece of a checkpoint carries its memory (~64 KiB), and a shard's
    # piece must fit a blob (bus::MAX_BLOB_BYTES, 256 MiB): 10,000 miners (~650 MB of pieces)
    # do not fit on 1, 2 or (unevenly split) 3 shards; they do on 4 stripes of 1. Checkpoints
    # only at the last tick (each is 100s of MB through the object store).
    "miner": dict(ships=3_000, ticks=200, script=MINER, configs=[
        ("sim", []),
        ("cluster 1", ["--shards", "1", "--checkpoint-every", "100000"]),
        ("cluster 2 stripes:4", ["--shards", "2", "--assignment", "stripes:4",
                                 "--checkpoint-every", "100000"]),
    ]),
    "miner10k": dict(ships=10_000, ticks=200, script=MINER, configs=[
        ("sim", []),
        ("cluster 4 stripes:1", ["--shards", "4", "--assignment", "stripes:1",
                                 "--checkpoint-every", "100000"]),
    ]),
    "borders": dict(ships=10_000, ticks=200, configs=[
        ("cluster 2 stripes:4", ["--shards", "2", "--assignment", "stripes:4"]),
        ("cluster 2 stripes:2", ["--shards", "2", "--assignment", "stripes:2"]),
        ("cluster 2 stripes:1", ["--shards", "2", "--assignment", "stripes:1"]),
        ("cluster 2 blocks:2", ["--shards", "2", "--assignment", "blocks:2"]),
        ("cluster 3 blocks:2", ["--shards", "3", "--assignment", "blocks:2"]),
        ("cluster 4 blocks:1", ["--shards", "4", "--assignment", "blocks:1"]),
    ]),
    # The protocol's own cost as shards are added: a world too small to keep anyone busy
    # (1,000 ships), so the tick is mostly messages (N shards on these 2 cores, loopback).
    "fanout": dict(ships=1_000, ticks=300, configs=[
        ("sim", []),
        ("cluster 1", ["--shards", "1"]),
        ("cluster 2 stripes:1", ["--shards", "2", "--assignment", "stripes:1"]),
        ("cluster 4 stripes:1", ["--shards", "4", "--assignment", "stripes:1"]),
        ("cluster 8 stripes:1", ["--shards", "8", "--assignment", "stripes:1"]),
        ("cluster 16 stripes:1", ["--shards", "16", "--assignment", "stripes:1"]),
        ("cluster 16 blocks:1", ["--shards", "16", "--assignment", "blocks:1"]),
    ]),
}
SHORT_TICKS = 10


def compiling():
    """Compiler processes running now (other people's builds on the same cores)."""
    out = subprocess.run(["pgrep", "-c", "-x", "rustc"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def busy_seconds():
    """CPU time all processes on the machine have used (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def children_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def command(name, extra, ships, ticks, script):
    cmd = [BIN] + (["sim"] if name == "sim" else ["cluster", "sim"] + extra)
    cmd += ["--ships", str(ships), "--ticks", str(ticks), "--json"]
    if script:
        cmd += ["--script", script]
    return cmd


def busy_share(seconds=3):
    """The share of the cores in use over the next `seconds` (nothing of ours runs then)."""
    busy = busy_seconds()
    time.sleep(seconds)
    return (busy_seconds() - busy) / (seconds * os.cpu_count())


def run(cmd, quiet_wait):
    waited = 0
    while waited < quiet_wait and busy_share() > 0.25:
        waited += 3
    before = (compiling(), os.getloadavg()[0])
    busy, mine = busy_seconds(), children_seconds()
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - started
    mine = children_seconds() - mine
    # The share of the machine's cores other processes used meanwhile.
    others = max(0.0, busy_seconds() - busy - mine) / (wall * os.cpu_count())
    if out.returncode != 0:
        print(f"FAILED {' '.join(cmd)}\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(cmd=" ".join(cmd), wall_s=wall, cpu_s=mine, others_share=others,
                rustc_before=before[0],
                load_before=before[1], rustc_after=compiling(),
                load_after=os.getloadavg()[0], summary=summary)


def measure(args):
    with open(args.out, "a") as out:
        for set_name in args.sets.split(","):
            s = SETS[set_name]
            for round_no in range(args.rounds):
                for name, extra in s["configs"]:
                    runs = [s["ticks"]]
                    if name != "sim" and set_name not in ("borders", "fanout"):
                        runs.append(SHORT_TICKS)
                    for ticks in runs:
                        cmd = command(name, extra, s["ships"], ticks, s.get("script"))
                        r = run(cmd, args.quiet_wait)
                        if r is None:
                            continue
                        r.update(set=set_name, config=name, round=round_no, ticks=ticks)
                        out.write(json.dumps(r) + "\n")
                        out.flush()
                        sm = r["summary"]
                        print(f"[{set_name} r{round_no}] {name:<22} T={ticks:<4} "
                              f"p50 {sm['tick_ms_p50']:.2f} p99 {sm['tick_ms_p99']:.2f} "
                              f"tps {sm['ticks_per_s']:.1f} hash {sm['state_hash']} "
                              f"others {r['others_share']:.0%}", flush=True)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def fmt(value, decimals):
    return "" if math.isnan(value) else f"{value:.{decimals}f}"


def summarise(path):
    runs = [json.loads(line) for line in open(path)]
    for set_name in SETS:
        mine = [r for r in runs if r["set"] == set_name]
        if not mine:
            continue
        s = SETS[set_name]
        print(f"\n### {set_name}: {s['ships']} ships, {s['ticks']} ticks"
              + (f", {s['script']}" if s.get("script") else ""))
        print("\n| run | n | tick p50 ms | tick p99 ms | ticks/s | steady ticks/s | "
              "shard tick p50 ms | barrier p50 ms | exchange B/tick | messages/tick | "
              "state hash | others' CPU |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, _ in s["configs"]:
            long_ = [r for r in mine if r["config"] == name and r["ticks"] == s["ticks"]]
            short = [r for r in mine if r["config"] == name and r["ticks"] == SHORT_TICKS]
            if not long_:
                continue
            sm = [r["summary"] for r in long_]
            steady = ""
            if short:
                wall_long = med([x["ticks"] / x["ticks_per_s"] for x in sm])
                wall_short = med([r["summary"]["ticks"] / r["summary"]["ticks_per_s"]
                                  for r in short])
                steady = f"{(s['ticks'] - SHORT_TICKS) / (wall_long - wall_short):.1f}"
            per_shard = ""
            barrier = ""
            if "per_shard" in sm[0]:
                n = len(sm[0]["per_shard"])
                per_shard = " / ".join(
                    f"{med([x['per_shard'][i]['tick_ms_p50'] for x in sm]):.2f}" for i in range(n))
                barrier = " / ".join(
                    f"{med([x['per_shard'][i]['exchange_ms_p50'] for x in sm]):.2f}"
                    for i in range(n))
            hashes = sorted({x["state_hash"] for x in sm})
            load = f"{med([r['others_share'] for r in long_]):.0%}"
            print(f"| {name} | {len(sm)} | {med([x['tick_ms_p50'] for x in sm]):.2f} | "
                  f"{med([x['tick_ms_p99'] for x in sm]):.2f} | "
                  f"{med([x['ticks_per_s'] for x in sm]):.1f} | {steady} | {per_shard} | "
                  f"{barrier} | {fmt(med([x.get('exchange_bytes_per_tick') for x in sm]), 0)} | "
                  f"{fmt(med([x.get('exchange_messages_per_tick') for x in sm]), 1)} | "
                  f"{','.join(hashes)} | {load} |")


def descendants(pid):
    """Process ids under `pid` (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_of(pid):
    """(command name, CPU seconds) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        head, rest = f.read().rsplit(")", 1)
    fields = rest.split()
    return head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(shards, assignment, ships, ticks):
    """CPU time nats-server and the leader/shard processes use per message of the tick
    protocol: `cluster sim` is run while its children's CPU times are sampled."""
    cmd = [BIN, "cluster", "sim", "--shards", str(shards), "--assignment", assignment,
           "--ships", str(ships), "--ticks", str(ticks), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = {}
    while proc.poll() is None:
        for pid in descendants(proc.pid):
            try:
                name, cpu = cpu_of(pid)
            except (OSError, IndexError):
                continue
            last[pid] = (name, cpu)
        time.sleep(0.05)
    summary = json.loads(proc.stdout.read().strip().splitlines()[-1])
    by_name = {}
    for name, cpu in last.values():
        by_name[name] = by_name.get(name, 0.0) + cpu
    # Per tick: the start, every exchange, every shard's report, the outcome.
    messages = ticks * (summary["exchange_messages_per_tick"] + shards + 2)
    print(f"{shards} shards {assignment}, {ships} ships, {ticks} ticks: "
          f"{summary['exchange_messages_per_tick']:.0f} exchanges/tick, ~{messages:.0f} "
          f"messages, tick p50 {summary['tick_ms_p50']:.2f} ms; CPU s (last sample): "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(by_name.items()))
          + f"; nats-server {1e6 * by_name.get('nats-server', 0) / messages:.0f} us/message")


# The 100-shard model of docs/cluster.md: measured inputs (this machine, release build) and
# assumptions, kept apart.
MEASURED = dict(
    edge_bytes=130,          # B per shared sector edge, per direction, per tick (117-157)
    ships_per_sector=36,     # occupied-sector density those bytes belong to (34.5-38.4)
    share_bytes_per_sector=38,  # TickDone hash shares: ~19 B x ~1.9 partition entries
    entries_per_sector=1.9,
    fold_us_per_entry=(0.10, 0.15),  # the leader's decode + merge + finish
    compute_ms=(10.5, 18.9),  # one 10k-ship world on 2 cores: tick p50, p99 (sim)
    take_in_ms=1.1,          # a 10k-ship shard's take-in + hash shares (cluster --shards 1)
    fixed_ms=0.66,           # start + report + outcome over loopback (1k ships, c1 - sim)
    exchange_ms=0.5,         # one acked exchange publish, small, loopback (2 vs 1 shard)
    exchange_us_per_kb=30,   # size-dependent exchange cost (stripes:1 vs :4, 10k and 50k)
    barrier_us_per_message=47,  # barrier growth per exchange/tick (16 shards, 64 -> 192)
    server_us_per_message=60,   # nats-server CPU per protocol message (8-16 shards)
)
ASSUMED = dict(shards=100, ships_per_shard=10_000, rtt_ms=0.2, tick_hz=10,
               stream_bytes=4 * 1024 ** 3)


def model():
    m, a = MEASURED, ASSUMED
    n = a["shards"]
    sectors = a["ships_per_shard"] / m["ships_per_sector"]
    side = math.ceil(math.sqrt(sectors * n))
    print(f"world: {n * a['ships_per_shard']:,} ships, ~{sectors:.0f} occupied sectors a "
          f"shard, ~{side} x {side} sectors")
    rows = []
    # blocks:3 under the current rule (bx + 2 by) mod N: blocks per shard over the world.
    k = math.ceil(side / 3)
    count = collections.Counter((bx + 2 * by) % n for bx in range(k) for by in range(k))
    held = [count.get(s, 0) for s in range(n)]
    rows.append(("blocks:3 (the rule today)", 12 * statistics.mean(held), 6,
                 max(held) / statistics.mean(held)))
    cols = collections.Counter(c % n for c in range(side))
    held = [cols.get(s, 0) for s in range(n)]
    rows.append(("stripes:1", 2 * side * statistics.mean(held), 4,
                 max(held) / statistics.mean(held)))
    rows.append(("10 x 10 tiling (not a rule yet)", 4 * math.sqrt(sectors), 8, 1.0))
    entries = sectors * n * m["entries_per_sector"]
    fold = [entries * us / 1000 for us in m["fold_us_per_entry"]]
    print(f"leader fold: {entries:,.0f} entries/tick, {fold[0]:.1f}-{fold[1]:.1f} ms; "
          f"reports {n * sectors * m['share_bytes_per_sector'] / 1e6:.2f} MB/tick")
    for name, edges, k, imbalance in rows:
        out = edges * m["edge_bytes"]
        per_exchange = out / k
        messages = n * (k + 1) + 2
        stream_bytes = n * (out + sectors * m["share_bytes_per_sector"])
        exchange = k * (m["exchange_ms"] + per_exchange / 1000 * m["exchange_us_per_kb"] / 1000
                        + a["rtt_ms"])
        fixed = m["fixed_ms"] + 3 * a["rtt_ms"]
        stream = n * k * m["barrier_us_per_message"] / 1000
        compute = m["compute_ms"][1] * imbalance
        low = compute + fixed + exchange + m["take_in_ms"] + fold[0]
        high = low + stream + fold[1] - fold[0]
        print(f"{name}: {edges:.0f} edges/shard, k={k}, out {out / 1e3:.1f} kB/tick "
              f"({per_exchange / 1e3:.1f} kB/exchange), msgs/shard out {k + 1} in {k + 1}; "
              f"stream {messages} msgs/tick ({messages * a['tick_hz']:,}/s), "
              f"{stream_bytes / 1e6:.2f} MB/tick ({stream_bytes * a['tick_hz'] / 1e6:.0f} MB/s), "
              f"server CPU {messages * m['server_us_per_message'] / 1000:.0f} ms/tick, "
              f"retention {a['stream_bytes'] / stream_bytes / a['tick_hz']:.0f} s; "
              f"slowest shard {compute:.1f} ms (imbalance {imbalance:.2f}), fixed {fixed:.2f}, "
              f"exchanges {exchange:.1f}, take-in {m['take_in_ms']}, fold {fold[0]:.1f}-"
              f"{fold[1]:.1f}, stream queue 0-{stream:.0f} -> tick {low:.0f}-{high:.0f} ms "
              f"({1000 / high:.0f}-{1000 / low:.0f} ticks/s)")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="cluster-figures.jsonl")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sets", default="10k,50k,miner,borders")
    p.add_argument("--quiet-wait", type=int, default=0,
                   help="seconds to wait for other builds to finish before each run")
    p.add_argument("--summarise", metavar="RUNS.jsonl")
    p.add_argument("--model", action="store_true", help="the 100-shard model's numbers")
    p.add_argument("--server-cpu", action="store_true",
                   help="nats-server's CPU per protocol message, 1,000 ships on 2 to 16 shards")
    args = p.parse_args()
    if args.model:
        model()
    elif args.server_cpu:
        for shards, assignment in [(2, "stripes:1"), (4, "stripes:1"), (8, "stripes:1"),
                                   (16, "stripes:1"), (16, "blocks:1")]:
            for _ in range(args.rounds):
                server_cpu(shards, assignment, 1_000, 300)
    elif args.summarise:
        summarise(args.summarise)
    else:
        measure(args)


if __name__ == "__main__":
    main()
