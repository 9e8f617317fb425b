"""Property tests over every decoder of network and control input (covey.lab.fuzz_targets).

Each decoder either returns a value or raises its one documented error; a real core fed
random, forged or foreign-key bytes drops them and keeps its members, facts and settings.
The same targets run for millions of inputs under atheris in bench/fuzz.py.
"""

from __future__ import annotations

import functools
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covey.lab.fuzz_targets import Escape, FuzzNode, StateChanged, seed_corpus, targets

FAST = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@functools.cache
def _setup() -> tuple[FuzzNode, dict[str, Any], dict[str, list[bytes]]]:
    seeds = seed_corpus(FuzzNode())
    node = FuzzNode()
    return node, targets(node), seeds


@st.composite
def mutated(draw: st.DrawFn, name: str) -> bytes:
    """A seed of ``name`` with a few octets changed, cut or added; or random bytes."""
    seeds = _setup()[2][name]
    if not seeds or draw(st.booleans()):
        return draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def _run(name: str, data: bytes) -> None:
    ts = _setup()[1]
    try:
        ts[name].run(data)
    except (Escape, StateChanged) as exc:
        pytest.fail(f"{name}: {exc} on input {data!r}")


PURE = [
    "frame_header",
    "frame_body",
    "keyring_open",
    "messages",
    "control_line",
    "control_sealed",
    "collector",
    "deliveries_store",
]


@pytest.mark.parametrize("name", PURE)
@FAST
@given(data=st.data())
def test_decoder_returns_or_raises_its_documented_error(name: str, data: st.DataObject) -> None:
    _run(name, data.draw(mutated(name)))


@pytest.mark.parametrize("name", ["node_unauth", "node_forged"])
@SLOW
@given(data=st.data())
def test_unauthenticated_bytes_change_nothing_on_a_node(name: str, data: st.DataObject) -> None:
    _run(name, data.draw(mutated(name)))


# Message arrays built field by field: a registered type number, then values of every
# msgpack kind (the shapes a peer holding the key could send).
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def message_arrays(draw: st.DrawFn) -> list[Any]:
    types = sorted(_setup()[0].node.message_types._by_type)
    kind = draw(st.sampled_from([*types, *range(0, 16)]))
    return [kind, *draw(st.lists(VALUES, max_size=9))]


@SLOW
@given(arrays=st.lists(message_arrays(), min_size=1, max_size=3))
def test_authenticated_frames_with_any_messages_never_raise_out_of_receive(
    arrays: list[Any],
) -> None:
    data = msgpack.packb(arrays, use_bin_type=True)
    _run("messages", data)
    _run("node_sealed", data)
    _run("node_sealed", b"\x91" + data[1:] if data[:1] == b"\x91" else data)


def test_the_node_targets_can_fail() -> None:
    # The checks are live: an authentic frame is accepted (the unauthenticated target
    # calls that an escape), and a changed table is seen as a state change.
    node = FuzzNode()
    authentic = seed_corpus(node)["keyring_open"][0]
    fresh = FuzzNode(node.key)
    with pytest.raises(Escape):
        fresh.unauthenticated(authentic)
    fresh.facts.set("changed", "yes", 1000.0)
    with pytest.raises(StateChanged):
        fresh.unauthenticated(b"junk")
