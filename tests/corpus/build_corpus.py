"""Writes the bad-input corpus next to this file: small broken models, data files and
artifacts, each paired in manifest.json with the command to run, the exit code and a fragment
of the message the user must see. Deterministic; run it again after changing a case:

    .venv/bin/python tests/corpus/build_corpus.py
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, parser

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent.parent / "examples" / "digits"

HEAD = '<ir_version: 8, opset_import: ["" : 13]>'


def _save_text(name: str, text: str, check: bool = True) -> str:
    model = parser.parse_model(text)
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, HERE / name)
    return name


def _dense(name: str, weight: np.ndarray) -> str:
    """x[N,3] -> MatMul(W) -> Relu."""
    w = numpy_helper.from_array(weight.astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", weight.shape[1]])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), HERE / name)
    return name


def models() -> list[dict]:
    digits = (DIGITS / "model.onnx").read_bytes()
    (HERE / "truncated.onnx").write_bytes(digits[: len(digits) // 2])
    flipped = bytearray(digits)
    for k in range(40, 400, 7):  # scramble field tags and lengths near the start
        flipped[k] ^= 0xA5
    (HERE / "corrupted.onnx").write_bytes(bytes(flipped))
    (HERE / "empty.onnx").write_bytes(b"")
    (HERE / "text.onnx").write_text("this is not an ONNX model\n")
    (HERE / "a_folder.onnx").mkdir(exist_ok=True)
    (HERE / "a_folder.onnx" / ".keep").write_text("")

    _dense("external_data.onnx", np.ones((3, 4)))
    ext = onnx.load(HERE / "external_data.onnx")
    onnx.save(ext, HERE / "external_data.onnx", save_as_external_data=True,
              all_tensors_to_one_file=True, location="external_data.missing",
              size_threshold=0)
    (HERE / "external_data.missing").unlink()

    cycle = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])],
        "cycle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3])])
    onnx.save(helper.make_model(cycle, opset_imports=[helper.make_opsetid("", 13)]),
              HERE / "cycle.onnx")
    missing_input = helper.make_graph(
        [helper.make_node("Add", ["x", "nowhere"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    onnx.save(helper.make_model(missing_input, opset_imports=[helper.make_opsetid("", 13)]),
              HERE / "checker_rejects.onnx")
    custom = helper.make_graph(
        [helper.make_node("FusedConv", ["x"], ["y"], domain="com.vendor")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    onnx.save(helper.make_model(custom, opset_imports=[helper.make_opsetid("", 13),
                                                       helper.make_opsetid("com.vendor", 1)]),
              HERE / "unknown_domain.onnx")
    _save_text("unsupported_ops.onnx", f"""{HEAD}
        g (float[N, 4] x) => (float[N, 4] y) {{
            a = Sigmoid(x)
            b = Tanh(a)
            c = LeakyRelu(b)
            y = Relu(c)
        }}""")
    _save_text("dynamic_spatial.onnx", f"""{HEAD}
        g (float[N, 1, H, W] x) => (float[N, 1, H, W] y) {{ y = Relu(x) }}""")
    _save_text("two_inputs.onnx", f"""{HEAD}
        g (float[N, 3] a, float[N, 3] b) => (float[N, 3] y) {{ y = Add(a, b) }}""")
    _save_text("two_outputs.onnx", f"""{HEAD}
        g (float[N, 3] x) => (float[N, 3] y, float[N, 3] z) {{ y = Relu(x)
            z = Relu(y) }}""")
    _save_text("int_input.onnx", f"""{HEAD}
        g (int64[N, 3] x) => (int64[N, 3] y) {{ y = Identity(x) }}""")
    _save_text("softmax_inside.onnx", f"""{HEAD}
        g (float[N, 3] x) => (float[N, 3] y) {{ s = Softmax(x)
            y = Relu(s) }}""")
    _save_text("mul_of_activations.onnx", f"""{HEAD}
        g (float[N, 3] x) => (float[N, 3] y) {{ r = Relu(x)
            y = Mul(r, x) }}""")
    _dense("nan_weight.onnx", np.array([[1, np.nan], [0, 1], [1, 1]]))
    _dense("inf_weight.onnx", np.array([[1, 0], [0, np.inf], [1, 1]]))
    _dense("good_dense.onnx", np.array([[1, 0], [0, 1], [1, 1]]))
    # finite weights whose products overflow float32 on the calibration data
    _dense("overflowing.onnx", np.full((3, 2), 3e38))
    _save_text("zero_stride.onnx", f"""{HEAD}
        g (float[N, 1, 4, 4] x) => (float[N, 1, 4, 4] y)
        <float[1, 1, 1, 1] w = {{1.0}}> {{ c = Conv <strides = [0, 0]> (x, w)
            y = Relu(c) }}""", check=False)
    return [
        {"case": "a folder, not a file", "args": ["compile", "a_folder.onnx"], "exit": 3,
         "says": "not a file"},
        {"case": "missing file", "args": ["compile", "no_such_model.onnx"], "exit": 3,
         "says": "no such file"},
        {"case": "empty file", "args": ["compile", "empty.onnx"], "exit": 3,
         "says": "not an ONNX model"},
        {"case": "text file", "args": ["compile", "text.onnx"], "exit": 3,
         "says": "not a readable ONNX model"},
        {"case": "truncated protobuf", "args": ["compile", "truncated.onnx"], "exit": 3,
         "says": "not a readable ONNX model"},
        {"case": "corrupted protobuf", "args": ["compile", "corrupted.onnx"], "exit": [3, 4],
         "says": ""},
        {"case": "external data missing", "args": ["compile", "external_data.onnx"], "exit": 3,
         "says": "external"},
        {"case": "graph with a cycle", "args": ["compile", "cycle.onnx"], "exit": 4,
         "says": "checker"},
        {"case": "checker rejects", "args": ["compile", "checker_rejects.onnx"], "exit": 4,
         "says": "checker"},
        {"case": "unknown opset domain", "args": ["compile", "unknown_domain.onnx"], "exit": 4,
         "says": "com.vendor"},
        {"case": "unsupported ops, all listed", "args": ["compile", "unsupported_ops.onnx"],
         "exit": 4, "says": "LeakyRelu"},
        {"case": "dynamic spatial dims", "args": ["compile", "dynamic_spatial.onnx"],
         "exit": 4, "says": "--input-shape"},
        {"case": "two inputs", "args": ["compile", "two_inputs.onnx"], "exit": 4,
         "says": "exactly one input"},
        {"case": "two outputs", "args": ["compile", "two_outputs.onnx"], "exit": 4,
         "says": "exactly one output"},
        {"case": "integer input", "args": ["compile", "int_input.onnx"], "exit": 4,
         "says": "float input"},
        {"case": "softmax inside the net", "args": ["compile", "softmax_inside.onnx"],
         "exit": 4, "says": "Softmax"},
        {"case": "product of activations", "args": ["compile", "mul_of_activations.onnx"],
         "exit": 4, "says": "Mul"},
        {"case": "NaN in weights", "args": ["compile", "nan_weight.onnx"], "exit": 4,
         "says": "NaN"},
        {"case": "Inf in weights", "args": ["compile", "inf_weight.onnx"], "exit": 4,
         "says": "NaN or Inf"},
        {"case": "activations overflow float32",
         "args": ["compile", "overflowing.onnx", "--calib", "calib_good.npz"], "exit": 4,
         "says": "overflow float32"},
        {"case": "zero stride", "args": ["compile", "zero_stride.onnx"], "exit": 4,
         "says": "stride 0"},
    ]


def data() -> list[dict]:
    rng = np.random.default_rng(0)
    good = rng.random((8, 3)).astype(np.float32)
    np.savez(HERE / "calib_good.npz", x=good, y=np.arange(8) % 2)
    np.savez(HERE / "calib_wrong_shape.npz", x=rng.random((8, 4)).astype(np.float32))
    np.savez(HERE / "calib_strings.npz", x=np.array([["a", "b", "c"]] * 4))
    nan = good.copy()
    nan[3, 1] = np.nan
    np.savez(HERE / "calib_nan.npz", x=nan)
    np.savez(HERE / "calib_empty.npz", x=np.zeros((0, 3), np.float32))
    np.savez(HERE / "calib_no_x.npz", images=good)
    np.savez(HERE / "test_no_labels.npz", x=good)
    np.savez(HERE / "test_bad_labels.npz", x=good, y=np.array(["a"] * 8))
    (HERE / "calib_not_npz.npz").write_text("x,y\n1,2\n")
    m = "good_dense.onnx"
    c = ["--calib", "calib_good.npz"]
    return [
        {"case": "calibration data of the wrong shape",
         "args": ["compile", m, "--calib", "calib_wrong_shape.npz"], "exit": 5,
         "says": "[N, 3]"},
        {"case": "calibration data of strings",
         "args": ["compile", m, "--calib", "calib_strings.npz"], "exit": 5, "says": "dtype"},
        {"case": "calibration data with NaN", "args": ["compile", m, "--calib", "calib_nan.npz"],
         "exit": 5, "says": "NaN"},
        {"case": "no calibration samples", "args": ["compile", m, "--calib", "calib_empty.npz"],
         "exit": 5, "says": "at least 1 sample"},
        {"case": "calibration file without x",
         "args": ["compile", m, "--calib", "calib_no_x.npz"], "exit": 5, "says": "no 'x'"},
        {"case": "calibration file that is not npz",
         "args": ["compile", m, "--calib", "calib_not_npz.npz"], "exit": 3, "says": ".npz"},
        {"case": "eval data without labels",
         "args": ["eval", m, "--data", "test_no_labels.npz", *c, "--timesteps", "2"],
         "exit": 5, "says": "'y'"},
        {"case": "eval data with text labels",
         "args": ["eval", m, "--data", "test_bad_labels.npz", *c, "--timesteps", "2"],
         "exit": 5, "says": "integer labels"},
        {"case": "zero time steps", "args": ["compile", m, *c, "--timesteps", "0"], "exit": 2,
         "says": "positive"},
        {"case": "negative time steps in eval",
         "args": ["eval", m, "--data", "calib_good.npz", *c, "--timesteps", "1,-4"], "exit": 2,
         "says": "positive"},
        {"case": "absurd time steps", "args": ["compile", m, *c, "--timesteps", "1000000000"],
         "exit": 2, "says": "100000"},
        {"case": "unknown --norm", "args": ["compile", m, *c, "--norm", "median"], "exit": 2,
         "says": "--norm"},
        {"case": "unknown target", "args": ["compile", m, *c, "--target", "tpu"], "exit": 2,
         "says": "--target"},
        {"case": "output path is a folder", "args": ["compile", m, *c, "-o", "a_folder.onnx"],
         "exit": 3, "says": "cannot write"},
        {"case": "output folder cannot be created",
         "args": ["compile", m, *c, "-o", "empty.onnx/sub/net.snn"], "exit": 3,
         "says": "cannot write"},
    ]


def artifacts() -> list[dict]:
    import snnc

    net = snnc.compile(HERE / "good_dense.onnx", calib=HERE / "calib_good.npz", timesteps=4)
    net.save(HERE / "good.snn")
    raw = (HERE / "good.snn").read_bytes()
    (HERE / "truncated.snn").write_bytes(raw[: len(raw) - 40])
    head_end = raw.index(b'"version":1') + len(b'"version":')
    (HERE / "wrong_version.snn").write_bytes(raw[:head_end] + b"9" + raw[head_end + 1:])
    tampered = bytearray(raw)
    tampered[-5] ^= 0xFF
    (HERE / "tampered_data.snn").write_bytes(bytes(tampered))
    header_at = raw.index(b'"format"')
    (HERE / "tampered_header.snn").write_bytes(raw[:header_at] + b"#" + raw[header_at + 1:])
    (HERE / "pickle.snn").write_bytes(pickle.dumps({"nodes": []}))
    d = ["--data", "calib_good.npz"]
    return [
        {"case": "artifact of a future format version", "args": ["run", "wrong_version.snn", *d],
         "exit": 3, "says": "version"},
        {"case": "truncated artifact", "args": ["run", "truncated.snn", *d], "exit": 3,
         "says": "truncated"},
        {"case": "artifact with tampered data", "args": ["run", "tampered_data.snn", *d],
         "exit": 3, "says": "checksum"},
        {"case": "artifact with tampered header", "args": ["run", "tampered_header.snn", *d],
         "exit": 3, "says": "JSON"},
        {"case": "a pickle posing as an artifact", "args": ["run", "pickle.snn", *d], "exit": 3,
         "says": "magic"},
        {"case": "run data of the wrong shape",
         "args": ["run", "good.snn", "--data", "calib_wrong_shape.npz"], "exit": 5,
         "says": "[N, 3]"},
    ]


def main() -> None:
    cases = models() + data() + artifacts()
    (HERE / "manifest.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {HERE}")


if __name__ == "__main__":
    main()
