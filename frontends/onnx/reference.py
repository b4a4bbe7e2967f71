"""One ONNX node evaluated on numpy values with onnx's reference evaluator, in the model's own
opsets: folds constants, and runs the gather arithmetic adaptive_pool checks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

# ops whose value changes from run to run: never folded
NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}


def evaluate_node(model: onnx.ModelProto, node: onnx.NodeProto,
                  feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The node's outputs (the named ones, in order). Raises whatever the evaluator raises."""
    def info(name: str) -> onnx.ValueInfoProto:
        return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)

    sub = onnx.helper.make_model(
        onnx.helper.make_graph([node], "fold", [info(i) for i in feeds],
                               [info(o) for o in node.output if o]),
        opset_imports=list(model.opset_import),
        ir_version=model.ir_version,
    )
    return [np.asarray(v) for v in ReferenceEvaluator(sub).run(None, dict(feeds))]
