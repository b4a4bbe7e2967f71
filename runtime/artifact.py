"""The compiled artifact (.snn): a versioned, self-describing file that needs no ONNX and runs
no code on load (no pickle).

Layout:  b"SNNC\\x00ART" | u64 little-endian header length | header (UTF-8 JSON) | data
The header describes the graph (nodes, attrs, and for every parameter its dtype, shape and byte
range in the data section), the target and compile options, and the SHA-256 of the data.
Arrays start at 64-byte aligned offsets. Writing is deterministic: the same network gives the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from snnc.compiler.errors import InputFileError, ModelError
from snnc.compiler.fileio import atomic_write_bytes
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ir.printer import node_fields
from snnc.compiler.ir.verify import verify

MAGIC = b"SNNC\x00ART"
FORMAT_VERSION = 1
_ALIGN = 64
_DTYPES = {"float32", "int32", "int64", "int16", "int8", "uint8"}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def encode(graph: Graph, target: str, options: dict[str, Any]) -> bytes:
    blobs: list[bytes] = []
    offset = 0

    def add(array: np.ndarray) -> dict[str, Any]:
        nonlocal offset
        # not ascontiguousarray: it makes 0-d arrays 1-d; tobytes() is C order anyway
        a = np.asarray(array)
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        entry = {"dtype": str(a.dtype), "shape": list(a.shape), "offset": offset,
                 "nbytes": len(raw)}
        pad = (-len(raw)) % _ALIGN
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
        return entry

    nodes = [{**node_fields(n, add), "source": None if n.source is None else list(n.source),
              "meta": {k: v for k, v in sorted(n.meta.items()) if _jsonable(v)}}
             for n in graph.nodes]
    data = b"".join(blobs)
    header = {
        "format": "snnc-artifact",
        "version": FORMAT_VERSION,
        "target": target,
        "options": options,
        "graph": {"nodes": nodes, "output": graph.output,
                  "meta": {k: v for k, v in sorted(graph.meta.items()) if _jsonable(v)}},
        "data_sha256": hashlib.sha256(data).hexdigest(),
        "data_nbytes": len(data),
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<Q", len(head)) + head + data


def save(path: str | os.PathLike[str], graph: Graph, target: str,
         options: dict[str, Any]) -> None:
    atomic_write_bytes(path, encode(graph, target, options))


def _bad(path: Path, why: str) -> InputFileError:
    return InputFileError(f"{path}: not a valid snnc artifact: {why}. "
                          "Compile the model again with `snnc compile`.")


def load(path: str | os.PathLike[str]) -> tuple[Graph, str, dict[str, Any]]:
    """Read an artifact: (graph, target, compile options)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not raw.startswith(MAGIC):
        raise _bad(path, "wrong magic bytes (is it an .snn file written by snnc?)")
    if len(raw) < len(MAGIC) + 8:
        raise _bad(path, "truncated header")
    (head_len,) = struct.unpack("<Q", raw[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    if start + head_len > len(raw):
        raise _bad(path, "truncated header")
    try:
        header = json.loads(raw[start:start + head_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"header is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != "snnc-artifact":
        raise _bad(path, "header does not describe an snnc artifact")
    if header.get("version") != FORMAT_VERSION:
        raise _bad(path, f"format version {header.get('version')!r}; this snnc reads "
                         f"version {FORMAT_VERSION}")
    data = raw[start + head_len:]
    if len(data) != header.get("data_nbytes"):
        raise _bad(path, f"data section has {len(data)} bytes, header says "
                         f"{header.get('data_nbytes')} (truncated?)")
    if hashlib.sha256(data).hexdigest() != header.get("data_sha256"):
        raise _bad(path, "data checksum mismatch (the file was modified or corrupted)")
    try:
        graph = _graph(header["graph"], data)
        verify(graph)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"malformed graph description ({type(exc).__name__}: {exc})") from None
    except ModelError as exc:
        raise _bad(path, f"inconsistent graph ({exc})") from None
    options = header.get("options") or {}
    if not isinstance(options, dict):  # dict() of a list or number would raise TypeError
        raise _bad(path, "compile options are not a JSON object")
    return graph, str(header.get("target")), options


def _array(entry: dict[str, Any], data: bytes) -> np.ndarray:
    dtype = entry["dtype"]
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} not allowed")
    off, nbytes = int(entry["offset"]), int(entry["nbytes"])
    shape = tuple(int(d) for d in entry["shape"])
    itemsize = np.dtype(dtype).itemsize
    # checked first: a negative count would make frombuffer read to the end of the data
    if any(d < 0 for d in shape) or nbytes != int(np.prod(shape)) * itemsize:
        raise ValueError(f"{nbytes} bytes do not hold a {dtype} array of shape {list(shape)}")
    if off < 0 or off + nbytes > len(data):
        raise ValueError("array outside the data section")
    a = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=nbytes // itemsize,
                      offset=off)
    return a.astype(np.dtype(dtype), copy=True).reshape(shape)


def _graph(g: dict[str, Any], data: bytes) -> Graph:
    nodes = []
    for n in g["nodes"]:
        nodes.append(Node(
            name=str(n["name"]), op=str(n["op"]), inputs=tuple(map(str, n["inputs"])),
            attrs=dict(n["attrs"]), params={k: _array(v, data) for k, v in n["params"].items()},
            shape=tuple(int(d) for d in n["shape"]),
            source=None if n["source"] is None else (str(n["source"][0]), str(n["source"][1])),
            meta=dict(n.get("meta") or {}),
        ))
    return Graph(tuple(nodes), str(g["output"]), dict(g["meta"]))
