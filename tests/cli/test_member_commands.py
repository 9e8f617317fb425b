"""``covey force-leave`` and ``covey rtt`` (Serf's) against real agents, by CLI and HTTP."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path

from covey.runtime.localcluster import LocalCluster, free_port, wait_until

from .test_cli import CONVERGE, covey


def _http(method: str, url: str, token: str = "") -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_force_leave_a_killed_member_and_refusals(cluster: LocalCluster, tmp_path: Path) -> None:
    port, token = free_port(), secrets.token_hex(16)
    (tmp_path / "token").write_text(token)
    http = ["--http", f"127.0.0.1:{port}", "--http-token-file", str(tmp_path / "token")]
    a = cluster.spawn("a", extra=http)
    cluster.spawn("b")
    c = cluster.spawn("c")
    wait_until(lambda: cluster.converged(["a", "b", "c"]), CONVERGE, what="three agents")
    ctl = ["--control", str(a.control)]

    # A live member is refused (exit 1, one line); so is an unknown one.
    live = covey("force-leave", *ctl, "b")
    assert live.returncode == 1, live
    assert "b is alive; only a failed member can be forced out" in live.stderr
    assert live.stderr.count("\n") == 1
    unknown = covey("force-leave", *ctl, "nosuch")
    assert unknown.returncode == 1 and "no such member" in unknown.stderr
    base = f"http://127.0.0.1:{port}/v1/force-leave"
    assert _http("POST", f"{base}/b")[0] == 401  # a mutating call: only with the token
    assert _http("POST", f"{base}/b", token)[0] == 409
    assert _http("POST", f"{base}/nosuch", token)[0] == 404

    c.signal(9)  # kill -9: c fails, then the operator forces it out
    wait_until(lambda: a.states().get("c") == "failed", CONVERGE, what="c failed on a")
    done = covey("force-leave", *ctl, "c", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "left"
    b = cluster.agents["b"]
    wait_until(lambda: b.states().get("c") == "left", CONVERGE, what="c left on b (gossiped)")
    assert a.states() == {"a": "alive", "b": "alive", "c": "left"}


def test_rtt_reports_what_the_probes_measured(cluster: LocalCluster) -> None:
    port = free_port()
    a = cluster.spawn("a", extra=["--http", f"127.0.0.1:{port}"])
    cluster.spawn("b")
    wait_until(lambda: cluster.converged(["a", "b"]), CONVERGE, what="two agents")
    ctl = ["--control", str(a.control)]

    def measured() -> bool:
        return covey("rtt", *ctl, "b").returncode == 0

    # One member: probed every probe interval (1 s), so a sample comes soon.
    wait_until(measured, CONVERGE, what="a round trip to b")
    shown = json.loads(covey("rtt", *ctl, "b", "--json").stdout)
    assert set(shown) == {"name", "id", "last_ms", "smoothed_ms", "min_ms", "samples"}
    assert shown["name"] == "b" and shown["samples"] >= 1
    assert 0 < shown["min_ms"] <= shown["last_ms"] < 1000  # loopback: well under a second
    text = covey("rtt", *ctl, "b").stdout
    assert text.startswith("b: ") and "ms smoothed" in text
    status, body = _http("GET", f"http://127.0.0.1:{port}/v1/rtt/b")
    assert status == 200 and body["id"] == shown["id"]
    assert covey("rtt", *ctl, "a").returncode == 1  # itself
    assert covey("rtt", *ctl, "nosuch").returncode == 1
    assert _http("GET", f"http://127.0.0.1:{port}/v1/rtt/nosuch")[0] == 404
