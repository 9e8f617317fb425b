"""Coverage-guided fuzzing of every decoder that takes network or control input (atheris).

    python bench/fuzz.py --total 10000000              # every target, 10 M inputs in all
    python bench/fuzz.py --total 200000 --only frame_header,node_unauth

The targets are in src/covey/lab/fuzz_targets.py: wire frame header and body, the keyring
(Fernet token + frame), the message arrays of every capability, the control socket and rpc
lines, the collector's trace batches, the stored delivery records, and a real core fed
random datagrams and stream requests, forged tokens behind a valid header (both
unauthenticated: its members, facts and settings must not change) and authenticated frames
carrying fuzzed messages (nothing may raise out of the receive call).

Each target runs in its own child process (libFuzzer runs one target per process) under
atheris with the covey modules instrumented, from a seed corpus made at run time: real
frames sealed with a key generated for the run, real message arrays, control lines and
records (nothing captured, no secret). A child stops itself after its share of the inputs
(``--total`` split by weight) or ``--max-time`` seconds, whichever comes first, and reports
its inputs, exec/s, escapes (an exception other than the decoder's documented one) and
unauthenticated state changes; every such input is saved under ``--crashes``. A progress
line is printed every 15 s per running child. Exit status 1 if anything escaped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Relative share of the inputs per target (fast pure decoders get more).
WEIGHTS = {
    "frame_header": 1.2,
    "frame_body": 1.2,
    "keyring_open": 1.0,
    "messages": 1.2,
    "control_line": 1.0,
    "control_sealed": 1.0,
    "collector": 1.0,
    "deliveries_store": 1.0,
    "node_unauth": 0.5,
    "node_forged": 0.5,
    "node_sealed": 0.4,
}
#: Inputs after which a child rebuilds its node (same key), so its tables stay small.
REBUILD_EVERY = 100_000
PROGRESS_EVERY = 15.0


def _child(args: argparse.Namespace) -> None:
    import atheris

    with atheris.instrument_imports(include=["covey"]):
        from covey.lab.fuzz_targets import Escape, FuzzNode, StateChanged, seed_corpus, targets

    name: str = args.child
    node = FuzzNode()
    corpus = Path(args.corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seed_corpus(node)[name]):
        (corpus / f"seed-{i}").write_bytes(seed)
    node = FuzzNode(node.key)  # the seeds were made on a copy: start from a clean state
    run = targets(node)[name].run
    crashes = Path(args.crashes)
    stats: dict[str, Any] = {"target": name, "inputs": 0, "escapes": 0, "state_changes": 0}
    start = last = time.monotonic()
    budget, limit = args.runs, args.max_time

    def report(final: bool) -> None:
        elapsed = time.monotonic() - start
        stats["seconds"] = round(elapsed, 1)
        stats["exec_per_s"] = round(stats["inputs"] / elapsed) if elapsed else 0
        stats["final"] = final
        print(json.dumps(stats), flush=True)

    def one_input(data: bytes) -> None:
        nonlocal last, run, node
        stats["inputs"] += 1
        try:
            run(data)
        except (Escape, StateChanged) as exc:
            key = "escapes" if isinstance(exc, Escape) else "state_changes"
            stats[key] += 1
            crashes.mkdir(parents=True, exist_ok=True)
            (crashes / f"{name}-{key}-{stats[key]}").write_bytes(data)
            (crashes / f"{name}-{key}-{stats[key]}.txt").write_text(f"{exc!r}\n"[:4000])
        n = stats["inputs"]
        if n % REBUILD_EVERY == 0 and name.startswith("node_"):
            node = FuzzNode(node.key)
            run = targets(node)[name].run
        if n % 1000 == 0:
            now = time.monotonic()
            if n >= budget or now - start >= limit:
                report(True)
                os._exit(0)
            if now - last >= PROGRESS_EVERY:
                last = now
                report(False)

    argv = [
        sys.argv[0],
        f"-runs={budget + 10_000}",
        f"-max_total_time={int(limit) + 60}",
        "-max_len=4096",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def _run_child(name: str, runs: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    log = work / f"{name}.libfuzzer.log"
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--runs",
        str(runs),
        "--max-time",
        str(args.max_time),
        "--corpus",
        str(work / f"corpus-{name}"),
        "--crashes",
        args.crashes,
    ]
    final: dict[str, Any] = {"target": name, "inputs": 0, "escapes": 0, "state_changes": 0}
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                stats = json.loads(line)
            except ValueError:
                continue
            final = stats
            print(
                f"  [{name}] {stats['inputs']:>10,} inputs  {stats['exec_per_s']:>7,}/s  "
                f"escapes {stats['escapes']}  state changes {stats['state_changes']}"
                f"{'  (done)' if stats.get('final') else ''}",
                flush=True,
            )
        code = proc.wait()
    if not final.get("final"):
        tail = log.read_text(errors="replace").splitlines()[-15:]
        final["error"] = f"child exited {code} before its report:\n" + "\n".join(tail)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=10_000_000, help="inputs over all targets")
    parser.add_argument("--max-time", type=float, default=3600.0, help="seconds per target")
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--crashes", default="bench/fuzz_crashes", help="where escapes go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    names = [n for n in args.only.split(",") if n] or list(WEIGHTS)
    unknown = set(names) - WEIGHTS.keys()
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    weight = sum(WEIGHTS[n] for n in names)
    shares = {n: int(args.total * WEIGHTS[n] / weight) for n in names}
    shares[names[0]] += args.total - sum(shares.values())
    print(
        f"fuzzing {len(names)} targets, {args.total:,} inputs in all (atheris, pid {os.getpid()})"
    )
    results = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="covey-fuzz-") as tmp:
        for name in names:
            results.append(_run_child(name, shares[name], args, Path(tmp)))
    wall = time.monotonic() - t0
    print(f"\n{'target':<18} {'inputs':>12} {'exec/s':>8} {'escapes':>8} {'unauth changes':>15}")
    for r in results:
        print(
            f"{r['target']:<18} {r['inputs']:>12,} {r.get('exec_per_s', 0):>8,} "
            f"{r['escapes']:>8} {r['state_changes']:>15}"
        )
        if "error" in r:
            print(f"  ERROR {r['error']}")
    total = sum(r["inputs"] for r in results)
    escapes = sum(r["escapes"] for r in results)
    changes = sum(r["state_changes"] for r in results)
    print(
        f"{'total':<18} {total:>12,} {round(total / wall):>8,} {escapes:>8} {changes:>15}"
        f"   ({wall:.0f} s)"
    )
    failed = escapes or changes or any("error" in r for r in results)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
