"""The .snn artifact: a faithful, deterministic round trip, and a loader that refuses every kind
of damaged or foreign file with an InputFileError that says why (and never unpickles)."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import snnc
from snnc.compiler.errors import InputFileError
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ir.printer import to_text
from snnc.compiler.ir.verify import infer_shape
from snnc.runtime import CompiledNetwork, artifact, load

F32 = np.float32
DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
HEAD_AT = len(artifact.MAGIC) + 8  # where the JSON header starts


@pytest.fixture(scope="module")
def digits_net() -> CompiledNetwork:
    calib = np.load(DIGITS / "calib.npz")["x"]
    return snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=24, preset="rate-p99.99")


def mixed_graph() -> Graph:
    """Per-channel thresholds, i_shift, a Clip-derived neuron, max pooling with ceil mode,
    a transposed (non-contiguous) weight and a softmax-dropped output: the less common
    corners of the format."""
    rng = np.random.default_rng(0)
    nodes = [Node("x", "input", attrs={"shape": [2, 5, 5]}, shape=(2, 5, 5),
                  source=("image", "input"))]

    def add(name: str, op: str, inputs: tuple[str, ...], attrs: dict[str, Any],
            meta: dict[str, Any] | None = None, **params: np.ndarray) -> None:
        shapes = [next(n.shape for n in nodes if n.name == i) for i in inputs]
        node = Node(name, op, inputs, attrs, params, source=(f"onnx_{name}", op.title()),
                    meta=meta or {})
        nodes.append(node.replace(shape=infer_shape(node, shapes)))

    add("conv1", "conv", ("x",), {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1],
                                  "groups": 1},
        weight=rng.normal(size=(3, 2, 3, 3)).astype(F32), bias=rng.normal(size=3).astype(F32))
    theta = rng.uniform(0.5, 2, (3, 1, 1)).astype(F32)
    add("if1", "if", ("conv1",), {"reset": "subtract"},
        {"theta_from": "max per-channel", "calib": object()},  # a non-JSON note is dropped
        theta=theta, v0=np.zeros_like(theta), i_shift=(theta / 32).astype(F32))
    add("pool1", "maxpool", ("if1",), {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0],
                                       "dilations": [1, 1], "ceil_mode": 1})
    add("flat", "flatten", ("pool1",), {})
    add("fc1", "linear", ("flat",), {}, weight=rng.normal(size=(27, 4)).astype(F32).T,
        bias=rng.normal(size=4).astype(F32))
    add("if2", "if", ("fc1",), {"reset": "subtract", "note": [1, "two", None, 0.1]},
        theta=np.array(1.5, F32), v0=np.array(0.75, F32))
    add("fc2", "linear", ("if2",), {}, weight=rng.normal(size=(3, 4)).astype(F32),
        bias=np.arange(3, dtype=F32))
    return Graph(tuple(nodes), "fc2", {"stage": "snn", "output_softmax": True,
                                       "shift": "input", "timesteps": 32, "name": "mixed"})


def write(path: Path, graph: Graph, target: str = "numpy",
          options: dict[str, Any] | None = None) -> bytes:
    artifact.save(path, graph, target, options if options is not None else {"timesteps": 32})
    return path.read_bytes()


def split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", raw[len(artifact.MAGIC):HEAD_AT])
    return json.loads(raw[HEAD_AT:HEAD_AT + n]), raw[HEAD_AT + n:]


def join(header: dict[str, Any], data: bytes) -> bytes:
    head = json.dumps(header).encode()
    return artifact.MAGIC + struct.pack("<Q", len(head)) + head + data


def refused(path: Path, *reason: str) -> str:
    """Load `path`, expect an InputFileError naming the file and every word of `reason`."""
    with pytest.raises(InputFileError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message
    for word in reason:
        assert word in message, message
    return message


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert to_text(a) == to_text(b)
    assert a.output == b.output
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes]
    for x, y in zip(a.nodes, b.nodes, strict=True):
        assert (x.op, x.inputs, x.shape, x.source) == (y.op, y.inputs, y.shape, y.source)
        assert json.dumps(x.attrs, sort_keys=True) == json.dumps(y.attrs, sort_keys=True)
        assert sorted(x.params) == sorted(y.params)
        for k in x.params:
            assert x.params[k].dtype == y.params[k].dtype
            assert x.params[k].shape == y.params[k].shape
            np.testing.assert_array_equal(x.params[k], y.params[k])


# ------------------------------------------------------------------------------- round trip


def test_compiled_network_round_trip(tmp_path: Path, digits_net: CompiledNetwork) -> None:
    path = tmp_path / "digits.snn"
    digits_net.save(path)
    loaded = load(path)
    assert_same_graph(digits_net.graph, loaded.graph)
    assert dict(loaded.graph.meta) == dict(digits_net.graph.meta)
    assert loaded.target == "numpy"
    assert loaded.options == digits_net.options
    assert loaded.default_timesteps == 24
    x = np.load(DIGITS / "test.npz")["x"][:16]
    before, after = digits_net.run(x), loaded.run(x)
    np.testing.assert_array_equal(before.outputs, after.outputs)
    assert before.spikes.keys() == after.spikes.keys()
    for k in before.spikes:
        np.testing.assert_array_equal(before.spikes[k], after.spikes[k])
    assert to_text(snnc.load(path).graph) == to_text(digits_net.graph)


def test_uncommon_graph_round_trip(tmp_path: Path) -> None:
    graph = mixed_graph()
    path = tmp_path / "mixed.snn"
    write(path, graph, "numpy", {"timesteps": 32, "shift": "input"})
    loaded, target, options = artifact.load(path)
    assert_same_graph(graph, loaded)
    assert (target, options) == ("numpy", {"timesteps": 32, "shift": "input"})
    assert dict(loaded.meta) == dict(graph.meta)
    assert loaded.node("if1").meta == {"theta_from": "max per-channel"}
    assert loaded.node("if2").attrs["note"] == [1, "two", None, 0.1]
    x = np.random.default_rng(1).uniform(0, 1, (5, 2, 5, 5)).astype(F32)
    ours = CompiledNetwork(graph).simulate(x, [3, 32])
    theirs = CompiledNetwork(loaded).simulate(x, [3, 32])
    np.testing.assert_array_equal(ours.outputs, theirs.outputs)


def test_writing_is_deterministic(tmp_path: Path) -> None:
    calib = np.load(DIGITS / "calib.npz")["x"]
    for k in (1, 2):
        snnc.compile(DIGITS / "model.onnx", calib=calib,
                     preset="rate-p99.99").save(tmp_path / f"{k}.snn")
    assert (tmp_path / "1.snn").read_bytes() == (tmp_path / "2.snn").read_bytes()
    assert write(tmp_path / "a.snn", mixed_graph()) == write(tmp_path / "b.snn", mixed_graph())


def test_tuned_compile_is_deterministic(tmp_path: Path) -> None:
    """The default preset simulates candidates and calibrates layer by layer (fast engine,
    batch chunks on several threads): the same bytes every time all the same."""
    calib = np.load(DIGITS / "calib.npz")["x"]
    for k in (1, 2):
        snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=4).save(tmp_path / f"{k}.snn")
    assert (tmp_path / "1.snn").read_bytes() == (tmp_path / "2.snn").read_bytes()
    assert load(tmp_path / "1.snn").options["tuned"]  # it did tune


def test_saving_a_loaded_file_gives_the_same_bytes(tmp_path: Path,
                                                   digits_net: CompiledNetwork) -> None:
    digits_net.save(tmp_path / "first.snn")
    load(tmp_path / "first.snn").save(tmp_path / "second.snn")
    assert (tmp_path / "first.snn").read_bytes() == (tmp_path / "second.snn").read_bytes()


def test_file_layout(tmp_path: Path, digits_net: CompiledNetwork) -> None:
    path = tmp_path / "digits.snn"
    digits_net.save(path)
    raw = path.read_bytes()
    assert raw.startswith(b"SNNC\x00ART")
    header, data = split(raw)
    assert header["format"] == "snnc-artifact"
    assert header["version"] == artifact.FORMAT_VERSION
    assert header["target"] == "numpy"
    assert header["data_nbytes"] == len(data)
    assert header["data_sha256"] == hashlib.sha256(data).hexdigest()
    nodes = {n["name"]: n for n in header["graph"]["nodes"]}
    assert [n.name for n in digits_net.graph.nodes] == list(nodes)
    for node in digits_net.graph.nodes:
        for key, value in node.params.items():
            entry = nodes[node.name]["params"][key]
            assert entry["offset"] % 64 == 0
            assert entry["nbytes"] == value.nbytes
            stored = np.frombuffer(data, "<f4", value.size, entry["offset"])
            np.testing.assert_array_equal(stored.reshape(value.shape), value)


def test_save_replaces_an_existing_file_and_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "m.snn"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"old contents")
    write(path, mixed_graph())
    assert load(path).graph.output == "fc2"
    assert [p.name for p in path.parent.iterdir()] == ["m.snn"]  # no temporary file left


# --------------------------------------------------------------------------------- refusals


@pytest.fixture
def good(tmp_path: Path) -> bytes:
    return write(tmp_path / "good.snn", mixed_graph())


def damaged(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "bad.snn"
    path.write_bytes(raw)
    return path


def test_missing_file_and_folder(tmp_path: Path) -> None:
    refused(tmp_path / "nope.snn", "cannot read")
    refused(tmp_path, "cannot read")


@pytest.mark.parametrize("raw", [b"", b"SNNC", b"snnc\x00ART" + bytes(8), b"PK\x03\x04zipzip",
                                 b"\x89HDF\r\n\x1a\n", b"SNNC\x00ARX" + bytes(40)])
def test_wrong_magic(tmp_path: Path, raw: bytes) -> None:
    refused(damaged(tmp_path, raw), "magic")


def test_first_byte_changed(tmp_path: Path, good: bytes) -> None:
    refused(damaged(tmp_path, b"X" + good[1:]), "magic")


def test_truncated_anywhere(tmp_path: Path, good: bytes) -> None:
    data = split(good)[1]
    head_end = len(good) - len(data)
    cuts = [3, len(artifact.MAGIC), HEAD_AT - 1, HEAD_AT, HEAD_AT + 1, head_end // 2,
            head_end - 1, head_end, head_end + 1, head_end + len(data) // 2, len(good) - 1]
    for cut in cuts:
        message = refused(damaged(tmp_path, good[:cut]))
        assert "magic" in message or "truncated" in message, (cut, message)


def test_data_appended(tmp_path: Path, good: bytes) -> None:
    refused(damaged(tmp_path, good + b"\0" * 64), "bytes")


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_other_format_version(tmp_path: Path, good: bytes, version: Any) -> None:
    header, data = split(good)
    header["version"] = version
    refused(damaged(tmp_path, join(header, data)), "version")


def test_missing_version(tmp_path: Path, good: bytes) -> None:
    header, data = split(good)
    del header["version"]
    refused(damaged(tmp_path, join(header, data)), "version")


@pytest.mark.parametrize("where", [0, 1, 100, -1])
def test_data_byte_flipped(tmp_path: Path, good: bytes, where: int) -> None:
    data = split(good)[1]
    raw = bytearray(good)
    k = len(good) - len(data) + (where % len(data))
    raw[k] ^= 0x01
    refused(damaged(tmp_path, bytes(raw)), "checksum")


def test_header_json_corrupted(tmp_path: Path, good: bytes) -> None:
    head_end = len(good) - len(split(good)[1])
    for k, byte in [(HEAD_AT, b"["), (HEAD_AT + 5, b"\xff"), (head_end - 1, b"\x00")]:
        raw = good[:k] + byte + good[k + 1:]
        refused(damaged(tmp_path, raw), "JSON")


@pytest.mark.parametrize("header", [[1, 2, 3], "snnc", 7, {"format": "something-else"}])
def test_header_that_is_not_an_artifact_description(tmp_path: Path, good: bytes,
                                                    header: Any) -> None:
    refused(damaged(tmp_path, join(header, split(good)[1])), "does not describe")


def _first_param(header: dict[str, Any]) -> dict[str, Any]:
    node = next(n for n in header["graph"]["nodes"] if n["params"])
    return next(iter(node["params"].values()))


@pytest.mark.parametrize("change", [
    {"offset": 10 ** 9},
    {"offset": -64},
    {"nbytes": 10 ** 9},
    {"nbytes": -4},
    {"nbytes": 0},
    {"nbytes": 6},
    {"offset": "end"},
    {"dtype": "object"},
    {"dtype": "O"},
    {"dtype": "float64"},
    {"shape": [7, 7, 7]},
])
def test_header_describing_an_impossible_array(tmp_path: Path, good: bytes,
                                               change: dict[str, Any]) -> None:
    header, data = split(good)
    entry = _first_param(header)
    if change.get("offset") == "end":
        change = {"offset": len(data)}
    entry.update(change)
    refused(damaged(tmp_path, join(header, data)), "malformed")


def test_array_that_ends_past_the_data(tmp_path: Path, good: bytes) -> None:
    header, data = split(good)
    entry = _first_param(header)
    entry["offset"] = len(data) - 4  # starts inside, ends outside
    refused(damaged(tmp_path, join(header, data)), "outside the data")


def test_array_size_must_match_its_shape(tmp_path: Path, good: bytes) -> None:
    """The last array is padded to 64 bytes: a negative size that reads "to the end" with a
    shape that fits the padded block must not sneak a wrong-sized bias into the graph."""
    header, data = split(good)
    last = max((e for n in header["graph"]["nodes"] for e in n["params"].values()),
               key=lambda e: e["offset"])
    assert last["offset"] + 64 == len(data)
    last.update(nbytes=-4, shape=[16])
    refused(damaged(tmp_path, join(header, data)), "malformed", "shape")


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "no graph": lambda h: h.pop("graph"),
    "graph is a list": lambda h: h.update(graph=[]),
    "unknown op": lambda h: h["graph"]["nodes"][1].update(op="teleport"),
    "dangling input": lambda h: h["graph"]["nodes"][2].update(inputs=["ghost"]),
    "wrong shape": lambda h: h["graph"]["nodes"][1].update(shape=[9, 9, 9]),
    "no nodes": lambda h: h["graph"].update(nodes=[]),
    "output missing": lambda h: h["graph"].update(output="ghost"),
    "node is a string": lambda h: h["graph"]["nodes"].append("node"),
    "attrs broken": lambda h: h["graph"]["nodes"][1].update(attrs={"strides": "x"}),
    "meta is a list": lambda h: h["graph"].update(meta=[1, 2]),
    "options is a list": lambda h: h.update(options=[1, 2]),
    "options is a number": lambda h: h.update(options=3),
}


@pytest.mark.parametrize("what", list(MUTATIONS))
def test_malformed_graph_description(tmp_path: Path, good: bytes, what: str) -> None:
    header, data = split(good)
    MUTATIONS[what](header)
    message = refused(damaged(tmp_path, join(header, data)))
    assert "not a valid snnc artifact" in message


# ------------------------------------------------------------------------------- no pickle


class _Sentinel:
    """Unpickling this touches a file: proof that something ran code from the file."""

    path = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_a_pickle_is_refused_without_being_unpickled(tmp_path: Path) -> None:
    trap = tmp_path / "trap-was-sprung"
    sentinel = _Sentinel()
    sentinel.path = str(trap)
    payload = pickle.dumps(sentinel)
    for raw in (payload, artifact.MAGIC + payload):
        refused(damaged(tmp_path, raw))
        assert not trap.exists()


def test_loading_does_not_use_pickle(tmp_path: Path, good: bytes,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the loader must not unpickle")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    graph = load(damaged(tmp_path, good)).graph
    assert graph.output == "fc2"
