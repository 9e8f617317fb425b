"""Collector intake benchmark: records per second one collector stores from N agents.

A real collector (``covey collector``, forked into the background on 127.0.0.1, its own
temporary data directory and generated key) and ``--senders`` sender *processes* (not
threads: sealing and opening Fernet tokens is CPU work, and on a small machine the
senders and the collector compete for the same cores, as agents on the collector's host
would). Each sender holds one connection and sends ``traces`` batches of ``--batch``
synthetic records (well-formed, as an agent's) one after another, each waiting for its
answer, for ``--duration`` seconds; all start at the same instant. The figure is the
records the collector *stored* (its own ``stats``, before and after) divided by the time
from the start to the last sender's last answer; and, as the shared machine's load moves
that figure a lot, the records stored per CPU-second the collector process used (user +
system, from psutil). Every record is acknowledged: at the end
stored must equal what the senders were told was stored, with no duplicates and no error.

    .venv/bin/python bench/collector_bench.py --senders 10 --batch 100 --duration 10

``--sender`` is internal (a sender process). The collector is stopped with ``covey
collector stop``; if that fails it is killed by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from covey.core.crypto.fernet import generate_key
from covey.runtime.collector.client import CollectorClient

COVEY = [sys.executable, "-m", "covey"]


def sender(args: argparse.Namespace) -> None:
    """One agent: batches of synthetic records on one connection until the deadline."""
    index = args.sender
    name = f"agent-{index:02d}"
    nid = f"{index + 1:032x}"
    keys = [Path(args.key_file).read_bytes().strip()]
    client = CollectorClient(args.address, keys, timeout=60.0)
    boot = time.time()
    seq = 0
    stored = duplicates = batches = 0
    latencies = []
    with client.connect() as conn:
        # The barrier: say we are connected, read the common start time, wait for it.
        print("ready", flush=True)
        start = float(sys.stdin.readline())
        while time.time() < start:
            time.sleep(min(0.01, max(start - time.time(), 0)))
        deadline = start + args.duration
        while time.time() < deadline:
            records = []
            for _ in range(args.batch):
                seq += 1
                records.append({
                    "seq": seq, "boot": boot, "at": time.time(), "op": "leader_heart",
                    "node": name, "node_id": nid, "cluster": "bench", "subject": None,
                    "subject_id": None, "leader": "agent-00", "term": 3, "members": 10,
                    "detail": "heartbeat", "n": seq, "cause": None,
                })  # fmt: skip
            began = time.perf_counter()
            answer = conn.send_traces(node_id=nid, node=name, cluster="bench", boot=boot,
                                      records=records)  # fmt: skip
            latencies.append(time.perf_counter() - began)
            stored += answer["stored"]
            duplicates += answer["duplicates"]
            batches += 1
    print(json.dumps({"sent": seq, "stored": stored, "duplicates": duplicates,
                      "batches": batches, "latencies": latencies, "end": time.time()}))  # fmt: skip


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start a collector, run the senders, measure, stop it."""
    work = Path(tempfile.mkdtemp(prefix="covey-collector-bench-"))
    key_file = work / "key"
    key_file.write_bytes(generate_key() + b"\n")
    out = subprocess.run(
        [*COVEY, "collector", "--key-file", str(key_file), "--data", str(work / "data"), "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    started = json.loads(out.stdout)
    address, pid = started["address"], int(started["pid"])
    collector = psutil.Process(pid)
    client = CollectorClient(address, [key_file.read_bytes().strip()])
    procs: list[subprocess.Popen[str]] = []
    try:
        before = client.request("stats")
        cpu_before = sum(collector.cpu_times()[:2])
        for i in range(args.senders):
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--sender", str(i), "--address", address,
                 "--key-file", str(key_file), "--batch", str(args.batch),
                 "--duration", str(args.duration)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            ))  # fmt: skip
        for p in procs:  # every sender started and connected (a blocking read, bounded
            assert p.stdout is not None  # by the senders' own connect timeout)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a sender did not start")
        start = time.time() + 0.2
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"{start}\n")
            p.stdin.close()
        results = []
        for p in procs:
            assert p.stdout is not None
            stdout = p.stdout.read()  # its one result line, at its end
            if p.wait(timeout=args.duration + 120) != 0:
                raise RuntimeError(f"a sender failed (exit {p.returncode})")
            results.append(json.loads(stdout))
        after = client.request("stats")
        cpu = sum(collector.cpu_times()[:2]) - cpu_before
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        stop = subprocess.run([*COVEY, "collector", "stop", address, "--key-file", str(key_file)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        if stop.returncode != 0 and collector.is_running():
            collector.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = max(r["end"] for r in results) - start
    stored = after["stored"] - before["stored"]
    told = sum(r["stored"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    return {
        "senders": args.senders,
        "batch": args.batch,
        "duration_s": args.duration,
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "elapsed_s": round(elapsed, 3),
        "records_stored": stored,
        "records_per_s": round(stored / elapsed),
        "batches": sum(r["batches"] for r in results),
        "batch_round_trip_ms": {
            "p50": round(1000 * statistics.median(latencies), 2),
            "p99": round(1000 * _percentile(latencies, 0.99), 2),
        },
        "collector_cpu_s_per_s": round(cpu / elapsed, 2),
        # What the collector does with one core of its own, whatever else the machine runs.
        "records_per_collector_cpu_s": round(stored / cpu) if cpu > 0 else None,
        "nothing_lost": stored == told == sum(r["sent"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "errors": after["errors"] - before["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100, help="records per traces request")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--keep", action="store_true", help="keep the collector's data")
    parser.add_argument("--sender", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--key-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sender is not None:
        sender(args)
        return
    if not 1 <= args.batch <= 1000 or not 1 <= args.senders <= 100 or not 0 < args.duration <= 600:
        parser.error("--batch 1..1000, --senders 1..100, --duration 0..600")
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
