"""The local channel against loopback UDP: datagrams per second and CPU per datagram.

One process sends N datagrams of a typical sealed-frame size through a socket pair and
reads them back, in bursts of 8 (each burst sent, then drained), once over a unix datagram
socket (the local channel's transport, with its address header) and once over UDP on
127.0.0.1 — side by side in the same run, each measured ``--runs`` times; the median run
is printed with the ratio. CPU time is the process's (user + system), so the figures hold
on a busy machine; wall time is printed beside it.

    python bench/local_channel_bench.py --count 200000 --size 300 --runs 5
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable

from covey.runtime.net.local_channel import channel_name

BURST = 8  # below net.unix.max_dgram_qlen (10 by default): a blocking send would wait for ever


def _pairs_unix(directory: str) -> tuple[socket.socket, socket.socket, object]:
    rx_path = os.path.join(directory, channel_name("bench", ("127.0.0.1", 1)) + ".d")
    tx_path = os.path.join(directory, channel_name("bench", ("127.0.0.1", 2)) + ".d")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(rx_path)
    tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    tx.bind(tx_path)
    return tx, rx, rx_path


def _pairs_udp() -> tuple[socket.socket, socket.socket, object]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    return tx, rx, rx.getsockname()


def _run(make: Callable[[], tuple[socket.socket, socket.socket, object]], count: int, data: bytes):
    tx, rx, dest = make()
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = 0
        while sent < count:
            n = min(BURST, count - sent)
            for _ in range(n):
                tx.sendto(data, dest)  # type: ignore[arg-type]
            for _ in range(n):
                rx.recv(65536)
            sent += n
        return time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        tx.close()
        rx.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200_000, help="datagrams per run")
    ap.add_argument("--size", type=int, default=300, help="octets per datagram")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if not 1 <= a.count <= 10_000_000 or not 1 <= a.size <= 60_000 or not 1 <= a.runs <= 50:
        ap.error("count 1..10,000,000, size 1..60,000, runs 1..50")
    header = b"\x09127.0.0.1\x1f\x40"  # what the local channel puts before a frame
    results: dict[str, list[tuple[float, float]]] = {"local (unix)": [], "udp 127.0.0.1": []}
    with tempfile.TemporaryDirectory(prefix="cvy-lc-") as d:
        for i in range(a.runs):
            for path in os.listdir(d):
                os.unlink(os.path.join(d, path))
            results["local (unix)"].append(
                _run(lambda: _pairs_unix(d), a.count, header + bytes(a.size))
            )
            results["udp 127.0.0.1"].append(_run(_pairs_udp, a.count, bytes(a.size)))
            print(f"run {i + 1}/{a.runs} done", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}; {a.count} datagrams of {a.size} octets")
    medians = {}
    for label, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        medians[label] = cpu
        print(
            f"{label:14s}: {a.count / wall:10,.0f} datagrams/s (wall), "
            f"{cpu / a.count * 1e6:6.2f} us CPU per datagram (send + receive)"
        )
    ratio = medians["local (unix)"] / medians["udp 127.0.0.1"]
    print(f"local / udp CPU per datagram: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
