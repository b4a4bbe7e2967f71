"""ONNX's backend node test cases (onnx.backend.test.case.node, generated in memory from the
installed onnx wheel: nothing downloads) as models snnc can import, and onnxruntime runs."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import numpy_helper


def node_cases(op: str) -> list:
    """ONNX's backend node test cases for `op`, with every input but X made a constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases
        cases = collect_testcases(None)
    out = []
    for case in cases:
        if case.kind != "node" or case.model.graph.node[0].op_type != op:
            continue
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        (inputs, outputs), *_ = case.data_sets
        g = model.graph
        names = [i.name for i in g.input]
        for name, value in zip(names[1:], inputs[1:], strict=True):
            g.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        first = [i for i in g.input if i.name == names[0]]
        del g.input[:]
        g.input.extend(first)
        out.append((case.name, model, inputs[0], outputs[0]))
    return out
