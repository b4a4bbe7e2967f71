"""The ONNX frontend's errors (what is refused, and how the message names it), file handling,
and the structure of what it builds: the IR of the digits example, the printer, the verifier."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import SeededRandom, max_rel_error, ort_run, parse_model
from onnx import numpy_helper, parser

from snnc.compiler.errors import InputFileError, ModelError, UnsupportedOpsError
from snnc.compiler.executor import run, run_all
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ir.printer import to_dot, to_json, to_text
from snnc.compiler.ir.verify import verify
from snnc.frontends.onnx import import_model, load_onnx, prepare, read_model, supported_ops

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
rand = SeededRandom(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """The same random data for a test however the tests are selected or ordered."""
    rand.reset()


def save(model: onnx.ModelProto, tmp_path: Path, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, path)
    return path


def import_error(model: onnx.ModelProto, kind: type[ModelError] = ModelError) -> ModelError:
    with pytest.raises(kind) as info:
        import_model(prepare(model))
    return info.value


# ---- unsupported ops -----------------------------------------------------------------------

def test_every_unsupported_op_in_one_error() -> None:
    model = parse_model("""
        g (float[N, 3, 4, 4] x) => (float[N, 3, 4, 4] y) {
            [first_sigmoid] s = Sigmoid (x)
            [between] r = Relu (s)
            [the_tanh] t = Tanh (r)
            [conv_after] c = Conv (t, w)
            [leaky_one] y = LeakyRelu <alpha = 0.1> (c)
        }""", consts={"w": rand(3, 3, 1, 1)})
    error = import_error(model, UnsupportedOpsError)
    message = str(error)
    assert error.exit_code == 4
    assert [name for name, _ in error.offenders] == ["first_sigmoid", "the_tanh", "leaky_one"]
    for name, op, out in [("first_sigmoid", "Sigmoid", "s"), ("the_tanh", "Tanh", "t"),
                          ("leaky_one", "LeakyRelu", "y")]:
        assert f"node '{name}' ({op}) -> '{out}'" in message
    assert "between" not in message and "conv_after" not in message  # supported: not listed
    assert "3 node(s)" in message
    listed = message.split("Supported ONNX ops:")[1]
    for op in supported_ops():
        assert re.search(rf"\b{op}\b", listed)
    assert "Sigmoid" not in listed


def test_unnamed_node_is_named_by_its_output() -> None:
    model = parse_model("""
        g (float[N, 3] x) => (float[N, 3] y) {
            y = Sigmoid (x)
        }""")
    assert "node 'y' (Sigmoid)" in str(import_error(model, UnsupportedOpsError))


def test_non_default_domain_is_reported() -> None:
    model = parse_model("""
        g (float[N, 3, 4, 4] x) => (float[N, 3, 4, 4] y) {
            [fused] g = com.microsoft.Gelu (x)
            y = Relu (g)
        }""", extra_opsets=', "com.microsoft" : 1')
    error = import_error(model, UnsupportedOpsError)
    assert "node 'fused'" in str(error)
    assert "com.microsoft" in str(error) and "Gelu" in str(error)


# ---- ModelError names the ONNX node and op -------------------------------------------------

REFUSED = {
    # case: (graph text, opset, constants, node name, op, words the message must contain)
    "mul_of_activations": ("""
        g (float[N, 3, 4, 4] x) => (float[N, 3, 4, 4] y) {
            r = Relu (x)
            [the_mul] y = Mul (r, x)
        }""", 13, {}, "the_mul", "Mul", "two activations"),
    "div_by_activation": ("""
        g (float[N, 3] x) => (float[N, 3] y) {
            [the_div] y = Div (c, x)
        }""", 13, {"c": np.ones(3, np.float32)}, "the_div", "Div", "division"),
    "softmax_inside": ("""
        g (float[N, 10] x) => (float[N, 10] y) {
            [inner_softmax] s = Softmax (x)
            [after] y = Relu (s)
        }""", 13, {}, "inner_softmax", "Softmax", "only a final Softmax"),
    "logsoftmax_inside": ("""
        g (float[N, 10] x) => (float[N, 10] y) {
            [inner_log] s = LogSoftmax (x)
            y = Relu (s)
        }""", 13, {}, "inner_log", "LogSoftmax", "only a final Softmax"),
    "softmax_over_batch": ("""
        g (float[N, 10] x) => (float[N, 10] y) {
            [batch_softmax] y = Softmax <axis = 0> (x)
        }""", 13, {}, "batch_softmax", "Softmax", "batch"),
    "flatten_axis_2": ("""
        g (float[N, 3, 4, 4] x) => (float[?, ?] y) {
            [flat2] y = Flatten <axis = 2> (x)
        }""", 13, {}, "flat2", "Flatten", "axis=2"),
    "transpose_moves_batch": ("""
        g (float[N, 3, 4, 4] x) => (float[3, N, 4, 4] y) {
            [swap] y = Transpose <perm = [1, 0, 2, 3]> (x)
        }""", 13, {}, "swap", "Transpose", "batch axis"),
    "transpose_default_perm": ("""
        g (float[N, 3, 4, 4] x) => (float[4, 4, 3, N] y) {
            [reverse] y = Transpose (x)
        }""", 13, {}, "reverse", "Transpose", "batch axis"),
    "pad_reflect": ("""
        g (float[N, 3, 4, 4] x) => (float[N, 3, 6, 6] y) {
            [mirror] y = Pad <mode = "reflect"> (x, p)
        }""", 13, {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}, "mirror", "Pad",
        "reflect"),
    "pad_batch": ("""
        g (float[N, 3] x) => (float[?, 3] y) {
            [padb] y = Pad (x, p)
        }""", 13, {"p": np.array([1, 0, 0, 0], np.int64)}, "padb", "Pad", "batch"),
    "gemm_trans_a": ("""
        g (float[2, 5] x) => (float[5, 3] y) {
            [gemm_t] y = Gemm <transA = 1> (x, b)
        }""", 13, {"b": np.ones((2, 3), np.float32)}, "gemm_t", "Gemm", "transA"),
    "conv_weight_not_constant": ("""
        g (float[N, 1, 3, 3] x) => (float[N, 1, 1, 1] y) {
            w = Identity (x)
            [dyn_conv] y = Conv (x, w)
        }""", 13, {}, "dyn_conv", "Conv", "constant"),
    "conv_groups_uneven": ("""
        g (float[N, 4, 5, 5] x) => (float[N, 3, 3, 3] y) {
            [grouped] y = Conv <group = 2> (x, w)
        }""", 13, {"w": np.ones((3, 2, 3, 3), np.float32)}, "grouped", "Conv", "groups"),
    "concat_constant": ("""
        g (float[N, 3] x) => (float[N, 5] y) {
            [cat] y = Concat <axis = 1> (x, c)
        }""", 13, {"c": np.ones((1, 2), np.float32)}, "cat", "Concat", "constant"),
    "gemm_bias_per_row": ("""
        g (float[3, 5] x) => (float[3, 3] y) {
            [fc] y = Gemm (x, b, c)
        }""", 13, {"b": np.ones((5, 3), np.float32), "c": np.ones((3, 1), np.float32)}, "fc",
        "Gemm", "batch row"),
    "constant_per_batch_row": ("""
        g (float[2, 3] x) => (float[2, 3] y) {
            [rowwise] y = Add (x, c)
        }""", 13, {"c": np.ones((2, 3), np.float32)}, "rowwise", "Add", "batch row"),
    "constant_does_not_broadcast": ("""
        g (float[N, 3, 1, 1] x) => (float[N, 3, 4, 4] y) {
            [grow] y = Add (x, c)
        }""", 13, {"c": np.ones((3, 4, 4), np.float32)}, "grow", "Add", "broadcast"),
    "reshape_mixes_batch": ("""
        g (float[N, 3, 4] x) => (float[?, 4] y) {
            [into_batch] y = Reshape (x, t)
        }""", 13, {"t": np.array([-1, 4], np.int64)}, "into_batch", "Reshape", "batch"),
    "reshape_batch_from_shape": ("""
        g (float[N, 3, 4, 5] x) => (float[?, ?] y) {
            s = Shape (x)
            n = Gather <axis = 0> (s, zero)
            m = Mul (n, three)
            t = Concat <axis = 0> (m, minus_one)
            [merge] y = Reshape (x, t)
        }""", 13, {"zero": np.array([0], np.int64), "three": np.array([3], np.int64),
                   "minus_one": np.array([-1], np.int64)}, "merge", "Reshape", "batch"),
    "clip_bound_not_scalar": ("""
        g (float[N, 2] x) => (float[N, 2] y) {
            [clamp] y = Clip (x, lo)
        }""", 13, {"lo": np.zeros(2, np.float32)}, "clamp", "Clip", "min"),
    "dropout_mask_used": ("""
        g (float[N, 3] x) => (float[N, 3] y) {
            [drop] d, mask = Dropout (x)
            m = Cast <to = 1> (mask)
            y = Add (d, m)
        }""", 13, {}, "drop", "Dropout", "mask output 'mask'"),
    "dropout_training": ("""
        g (float[N, 3] x) => (float[N, 3] y) {
            [drop] y = Dropout (x, ratio, training)
        }""", 13, {"ratio": np.array(0.5, np.float32), "training": np.array(True)}, "drop",
        "Dropout", "eval mode"),
    "cast_to_int": ("""
        g (float[N, 3] x) => (int64[N, 3] y) {
            [to_int] y = Cast <to = 7> (x)
        }""", 13, {}, "to_int", "Cast", "INT64"),
    "batchnorm_training": ("""
        g (float[N, 2, 3] x) => (float[N, 2, 3] y) {
            [bn] y = BatchNormalization <training_mode = 1> (x, s, s, s, s)
        }""", 15, {"s": np.ones(2, np.float32)}, "bn", "BatchNormalization", "eval"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_node_name(case: str) -> None:
    text, opset, consts, name, op, words = REFUSED[case]
    model = parse_model(text, opset, consts)
    output = next(n.output[0] for n in model.graph.node if n.name == name)
    error = import_error(model)
    message = str(error)
    assert error.exit_code == 4
    assert message.startswith(f"node '{name}' ({op}) -> '{output}': ")  # what users can find
    assert error.node == name and error.op == op and error.output == output
    assert words in message


# ---- the graph's input and output ----------------------------------------------------------

def test_two_inputs_refused() -> None:
    model = parse_model("""
        g (float[N, 3] a, float[N, 3] b) => (float[N, 3] y) {
            y = Add (a, b)
        }""")
    message = str(import_error(model))
    assert "2 inputs" in message and "'a'" in message and "'b'" in message


def test_two_outputs_refused() -> None:
    model = parse_model("""
        g (float[N, 3] x) => (float[N, 3] y, float[N, 3] z) {
            y = Relu (x)
            z = Relu (y)
        }""")
    assert "2 outputs" in str(import_error(model))


def test_output_independent_of_input_refused() -> None:
    model = parse_model("""
        g (float[N, 3] x) => (float[3] y) {
            y = Constant <value = float[3] {1, 2, 3}> ()
        }""")
    assert "does not depend on the model input" in str(import_error(model))


def test_integer_input_refused() -> None:
    model = parse_model("""
        g (int64[N, 3] x) => (int64[N, 3] y) {
            y = Relu (x)
        }""")
    message = str(import_error(model))
    assert "'x'" in message and "INT64" in message


DYNAMIC = """
    g (float[N, 1, H, W] x) => (float[N, 2, H, W] y) {
        c = Conv <pads = [1, 1, 1, 1]> (x, w)
        y = Relu (c)
    }"""


def test_dynamic_spatial_dims_need_input_shape(tmp_path: Path) -> None:
    path = save(parse_model(DYNAMIC, consts={"w": rand(2, 1, 3, 3)}), tmp_path)
    with pytest.raises(ModelError) as info:
        load_onnx(path)
    assert "--input-shape" in str(info.value) and "'x'" in str(info.value)


def test_input_shape_sets_dynamic_dims(tmp_path: Path) -> None:
    model = parse_model(DYNAMIC, consts={"w": rand(2, 1, 3, 3)})
    graph = load_onnx(save(model, tmp_path), input_shape=(1, 8, 6))
    assert graph.input.shape == (1, 8, 6)
    assert graph.output_node.shape == (2, 8, 6)
    x = rand(3, 1, 8, 6)
    assert max_rel_error(run(graph, x), ort_run(model, x)) <= 1e-4


def test_input_shape_of_wrong_rank_refused(tmp_path: Path) -> None:
    path = save(parse_model(DYNAMIC, consts={"w": rand(2, 1, 3, 3)}), tmp_path)
    with pytest.raises(ModelError, match="--input-shape"):
        load_onnx(path, input_shape=(8, 6))


def test_dynamic_batch_is_fine(tmp_path: Path) -> None:
    model = parse_model("""
        g (float[batch_size, 2, 5] x) => (float[batch_size, 2, 5] y) {
            y = Relu (x)
        }""")
    graph = load_onnx(save(model, tmp_path))
    assert graph.input.shape == (2, 5)
    for n in (1, 4):
        x = rand(n, 2, 5)
        np.testing.assert_array_equal(run(graph, x), ort_run(model, x))


def test_rank_1_input_refused() -> None:
    model = parse_model("""
        g (float[N] x) => (float[N] y) {
            y = Relu (x)
        }""")
    assert "rank 1" in str(import_error(model))


# ---- opsets --------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [7, 8])
def test_old_opset_is_upgraded(opset: int) -> None:
    """Weights listed as graph inputs (as IR version 3 requires) and Clip's attribute form."""
    model = onnx.parser.parse_model(f"""<ir_version: 3, opset_import: ["" : {opset}]>
        g (float[N, 2, 6, 6] x, float[3, 2, 3, 3] w, float[3] b, float[4, 12] w2,
           float[4] b2) => (float[N, 4] y) {{
            c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
            k = Clip <min = 0.0, max = 1.5> (c)
            p = MaxPool <kernel_shape = [3, 3], strides = [3, 3]> (k)
            f = Flatten (p)
            y = Gemm <transB = 1> (f, w2, b2)
        }}""")
    for name, value in {"w": rand(3, 2, 3, 3), "b": rand(3), "w2": rand(4, 12),
                        "b2": rand(4)}.items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    graph = import_model(prepare(model))
    assert graph.meta["opset"] >= 9
    assert [n.op for n in graph.nodes] == ["input", "conv", "clip", "maxpool", "flatten",
                                           "linear"]
    clip = graph.nodes[2]
    assert (clip.attrs["min"], clip.attrs["max"]) == (0.0, 1.5)
    x = rand(2, 2, 6, 6)
    assert max_rel_error(run(graph, x), ort_run(model, x)) <= 1e-4


def test_opset_newer_than_onnx_refused() -> None:
    opset = onnx.defs.onnx_opset_version() + 1
    model = onnx.parser.parse_model(f"""<ir_version: 10, opset_import: ["" : {opset}]>
        g (float[N, 3] x) => (float[N, 3] y) {{
            y = Relu (x)
        }}""")
    with pytest.raises(ModelError) as info:
        prepare(model)
    message = str(info.value)
    assert f"opset {opset}" in message and "9-23" in message


@pytest.mark.parametrize("opset", [9, 13, 21, 22, 23])
def test_supported_opsets(opset: int) -> None:
    model = parse_model("""
        g (float[N, 3] x) => (float[N, 3] y) {
            y = Relu (x)
        }""", opset)
    assert import_model(prepare(model)).meta["opset"] == opset


@pytest.mark.parametrize("opset", [13, 18, 21, 22, 23])
def test_common_ops_match_onnxruntime_in_each_tested_opset(opset: int) -> None:
    """Opsets 22 and 23 only widen the types of these ops; the IR is the same everywhere."""
    model = parse_model("""
        g (float[N, 2, 8, 8] x) => (float[N, 4] y) {
            c = Conv <pads = [1, 1, 1, 1]> (x, w)
            b = BatchNormalization (c, s, t, t, s)
            r = Relu (b)
            m = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (r)
            d, mask = Dropout (m)
            k = Clip (d, lo, hi)
            a = AveragePool <kernel_shape = [2, 2], strides = [2, 2]> (k)
            p = Transpose <perm = [0, 1, 3, 2]> (a)
            u = Unsqueeze (p, one)
            q = Squeeze (u, one)
            j = Concat <axis = 1> (a, q)
            f = Flatten (j)
            g = Gemm <transB = 1> (f, v, e)
            y = Softmax (g)
        }""", opset, {"w": rand(3, 2, 3, 3), "s": np.ones(3, np.float32),
                      "t": np.zeros(3, np.float32), "lo": np.float32(0),
                      "hi": np.float32(1.5), "one": np.array([1], np.int64),
                      "v": rand(4, 24), "e": rand(4)})
    graph = import_model(prepare(model))
    x = rand(3, 2, 8, 8)
    assert max_rel_error(run(graph, x), ort_run(model, x)) <= 1e-5


# ---- what exporters write: Dropout masks, CastLike, local functions --------------------------

@pytest.mark.parametrize("opset", [9, 12, 13, 22])
def test_dropout_with_an_unused_mask_is_the_identity(opset: int) -> None:
    """Old exporters (and the zoo's VGG-19, SqueezeNet) give every Dropout a mask output."""
    model = parse_model("""
        g (float[N, 3, 4, 4] x) => (float[N, 3, 4, 4] y) {
            [drop] d, mask = Dropout (x)
            y = Relu (d)
        }""", opset)
    graph = import_model(prepare(model))
    assert [n.op for n in graph.nodes] == ["input", "relu"]
    x = rand(2, 3, 4, 4)
    np.testing.assert_array_equal(run(graph, x), ort_run(model, x))


def test_castlike_constants_fold() -> None:
    """dynamo with optimize=False: every scalar is CastLike'd to the activation's type."""
    model = parse_model("""
        g (float[N, 3] x) => (float[N, 3] y) {
            lo = CastLike (zero, x)
            hi = CastLike (six, x)
            [act] c = Clip (x, lo, hi)
            f = Cast <to = 1> (c)
            y = CastLike (f, lo)
        }""", 17, {"zero": np.array(0.0, np.float64), "six": np.array(6, np.int64)})
    graph = import_model(prepare(model))
    assert [n.op for n in graph.nodes] == ["input", "clip"]
    assert (graph.nodes[1].attrs["min"], graph.nodes[1].attrs["max"]) == (0.0, 6.0)
    x = 4 * rand(2, 3)
    np.testing.assert_array_equal(run(graph, x), ort_run(model, x))


LOCAL_FUNCTIONS = """
    <ir_version: 8, opset_import: ["" : 17, "models" : 1]>
    g (float[N, 2, 6, 6] x) => (float[N, 3, 6, 6] y) {
        [first_block] h = models.Block (x, w1)
        [second_block] y = models.Block (h, w2)
    }
    <domain: "models", opset_import: ["" : 17]>
    Block (a, w) => (b) {
        c = Conv <pads = [1, 1, 1, 1]> (a, w)
        [inner] b = ACT (c)
    }
"""


def _local_functions(act: str) -> onnx.ModelProto:
    model = onnx.parser.parse_model(LOCAL_FUNCTIONS.replace("ACT", act))
    for name, value in {"w1": rand(3, 2, 3, 3), "w2": rand(3, 3, 3, 3)}.items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


def test_local_functions_are_inlined() -> None:
    """torch's export_modules_as_functions=True: one function per module class."""
    model = _local_functions("Relu")
    graph = import_model(prepare(model))
    assert [n.op for n in graph.nodes] == ["input", "conv", "relu", "conv", "relu"]
    x = rand(2, 2, 6, 6)
    assert max_rel_error(run(graph, x), ort_run(model, x)) <= 1e-5


def test_unsupported_op_inside_a_local_function_is_named() -> None:
    error = import_error(_local_functions("Tanh"), UnsupportedOpsError)
    assert [op for _, op in error.offenders] == ["Tanh", "Tanh"]
    assert all("inner" in name for name, _ in error.offenders)


def test_checker_rejection_is_a_model_error() -> None:
    model = parse_model("""
        g (float[N, 3] x) => (float[N, 3] y) {
            y = Relu (x)
            y = Relu (x)
        }""")
    with pytest.raises(ModelError) as info:
        prepare(model)
    assert not isinstance(info.value, InputFileError)
    assert "checker" in str(info.value) and "'y'" in str(info.value)


# ---- files ---------------------------------------------------------------------------------

def _file_error(path: Path) -> InputFileError:
    with pytest.raises(InputFileError) as info:
        load_onnx(path)
    assert info.value.exit_code == 3
    assert str(path) in str(info.value)
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in str(_file_error(tmp_path / "absent.onnx"))


def test_directory(tmp_path: Path) -> None:
    assert "not a file" in str(_file_error(tmp_path))


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("graph main(x) { y = relu(x) }\nthis is not protobuf\n")
    assert "ONNX" in str(_file_error(path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert "ONNX" in str(_file_error(path))


def test_truncated_model(tmp_path: Path) -> None:
    data = (DIGITS / "model.onnx").read_bytes()
    path = tmp_path / "half.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert "ONNX" in str(_file_error(path))


def _external_copy(tmp_path: Path) -> Path:
    model = onnx.load(DIGITS / "model.onnx")
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.weights", size_threshold=0)
    return path


def test_external_data_is_loaded(tmp_path: Path) -> None:
    path = _external_copy(tmp_path)
    assert (tmp_path / "ext.weights").exists()
    x = np.load(DIGITS / "test.npz")["x"][:8]
    np.testing.assert_array_equal(run(load_onnx(path), x),
                                  run(load_onnx(DIGITS / "model.onnx"), x))


def test_external_data_missing(tmp_path: Path) -> None:
    path = _external_copy(tmp_path)
    (tmp_path / "ext.weights").unlink()
    assert "external" in str(_file_error(path))


def test_external_data_outside_the_folder(tmp_path: Path) -> None:
    path = _external_copy(tmp_path)
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../elsewhere.weights"
    onnx.save(model, path)
    shutil.copy(tmp_path / "ext.weights", tmp_path.parent / "elsewhere.weights")
    try:
        assert "external" in str(_file_error(path))
    finally:
        (tmp_path.parent / "elsewhere.weights").unlink()


def test_read_model_keeps_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "copy.onnx"
    shutil.copy(DIGITS / "model.onnx", path)
    before = path.read_bytes()
    read_model(path)
    load_onnx(path)
    assert path.read_bytes() == before


# ---- the digits example --------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits() -> Graph:
    return load_onnx(DIGITS / "model.onnx")


def test_digits_ops(digits: Graph) -> None:
    assert [n.op for n in digits.nodes] == [
        "input",
        "conv", "batchnorm", "relu",
        "conv", "batchnorm", "relu", "avgpool",
        "conv", "batchnorm", "relu", "avgpool",
        "flatten", "linear",
    ]
    assert digits.output == digits.nodes[-1].name
    assert digits.meta["name"] == "model"


def test_digits_sources_and_shapes(digits: Graph) -> None:
    """Every IR node names its ONNX node, and has that node's output shape (as onnxruntime
    computes it) and value (as run_all computes it)."""
    model = onnx.load(DIGITS / "model.onnx")
    by_name = {n.name: n for n in model.graph.node}
    assert digits.input.source == (model.graph.input[0].name, "input")
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    del exposed.graph.output[:]
    for node in digits.nodes[1:]:
        name, op = node.source
        assert by_name[name].op_type == op
        exposed.graph.output.append(onnx.ValueInfoProto(name=by_name[name].output[0]))
    session = ort.InferenceSession(exposed.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = np.load(DIGITS / "test.npz")["x"][:5]
    refs = session.run(None, {"input": x})
    ours = run_all(digits, x)
    for node, ref in zip(digits.nodes[1:], refs, strict=True):
        assert (5, *node.shape) == ref.shape, node.name
        assert max_rel_error(ours[node.name], ref) <= 1e-4, node.name


def test_digits_matches_onnxruntime(digits: Graph) -> None:
    x = np.load(DIGITS / "test.npz")["x"]
    ref = ort_run(onnx.load(DIGITS / "model.onnx"), x)
    ours = run(digits, x)
    assert ours.shape == ref.shape == (len(x), 10)
    assert max_rel_error(ours, ref) <= 1e-4
    assert np.array_equal(ours.argmax(1), ref.argmax(1))


# ---- printer -------------------------------------------------------------------------------

LINE = re.compile(r"^%(?P<name>\S+) : f32\[N(?P<shape>(,\d+)*)\] = (?P<op>\w+)"
                  r"(\[(?P<settings>.+)\])?\((?P<args>(%\S+)(, %\S+)*)?\)"
                  r"( \{(?P<params>\w+: \w+\[[\d,]*\](, \w+: \w+\[[\d,]*\])*)\})?$")


def _branching_graph() -> Graph:
    model = parse_model("""
        g (float[N, 3, 4, 4] x) => (float[N, 6, 2, 2] y) {
            [c] c = Conv <pads = [1, 1, 1, 1]> (x, w)
            [r] r = Relu (c)
            [s] s = Sub (r, x)
            [cat] k = Concat <axis = 1> (s, r)
            [pool] y = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (k)
        }""", consts={"w": rand(3, 3, 3, 3)})
    return import_model(prepare(model))


@pytest.mark.parametrize("which", ["digits", "branching"])
def test_text_format(which: str, digits: Graph) -> None:
    graph = digits if which == "digits" else _branching_graph()
    lines = [ln for ln in to_text(graph).splitlines() if ln.startswith("%")]
    assert len(lines) == len(graph)
    for line, node in zip(lines, graph.nodes, strict=True):
        match = LINE.match(line)
        assert match, line
        assert match["name"] == node.name and match["op"] == node.op
        shape = tuple(int(d) for d in match["shape"].split(",")[1:])
        assert shape == node.shape
        args = [] if match["args"] is None else match["args"].split(", ")
        assert args == [f"%{i}" for i in node.inputs]
        printed = {} if match["params"] is None else {
            k: v for k, v in (p.split(": ") for p in match["params"].split(", "))}
        assert printed == {k: f"f32[{','.join(map(str, v.shape))}]"
                           for k, v in node.params.items()}
    assert to_text(graph).rstrip().splitlines()[-1] == f"return %{graph.output}"


def test_text_settings(digits: Graph) -> None:
    text = to_text(digits)
    assert "conv[k=3x3, s=1,1, p=1,1,1,1](%input)" in text
    assert "avgpool[k=2x2, s=2,2]" in text
    assert "linear[128->10]" in text


def test_json_round_trips(digits: Graph) -> None:
    data = json.loads(to_json(digits))
    assert [n["name"] for n in data["nodes"]] == [n.name for n in digits.nodes]
    assert data["output"] == digits.output
    for entry, node in zip(data["nodes"], digits.nodes, strict=True):
        assert entry["op"] == node.op
        assert entry["inputs"] == list(node.inputs)
        assert tuple(entry["shape"]) == node.shape
        assert entry["source"] == {"name": node.source[0], "op": node.source[1]}
        for key, summary in entry["params"].items():
            assert summary["shape"] == list(node.params[key].shape)
            assert summary["max"] == pytest.approx(float(node.params[key].max()))


def test_dot(digits: Graph) -> None:
    dot = to_dot(digits)
    assert dot.startswith("digraph")
    assert dot.rstrip().endswith("}")
    edges = re.findall(r'^  "(\S+)" -> "(\S+)";$', dot, re.MULTILINE)
    assert edges == [(i, n.name) for n in digits.nodes for i in n.inputs]
    for node in digits.nodes:
        assert f'"{node.name}" [label=' in dot


# ---- verifier ------------------------------------------------------------------------------

def _input(shape: tuple[int, ...] = (4,)) -> Node:
    return Node("input", "input", attrs={"shape": list(shape)}, shape=shape)


def _linear(name: str, src: str, weight: np.ndarray | None = None,
            shape: tuple[int, ...] = (3,)) -> Node:
    w = np.ones((3, 4), np.float32) if weight is None else weight
    return Node(name, "linear", (src,), params={"weight": w, "bias": np.zeros(3, np.float32)},
                shape=shape, source=(f"onnx_{name}", "Gemm"))


def _relu(name: str, src: str) -> Node:
    return Node(name, "relu", (src,), shape=(3,))


def test_verify_accepts_a_good_graph() -> None:
    graph = Graph((_input(), _linear("fc", "input"), _relu("act", "fc")), "act")
    verify(graph)
    np.testing.assert_array_equal(run(graph, np.ones((2, 4), np.float32)),
                                  np.full((2, 3), 4, np.float32))


def test_verify_duplicate_name() -> None:
    graph = Graph((_input(), _linear("fc", "input"), _relu("fc", "fc")), "fc")
    with pytest.raises(ModelError, match="duplicate node name 'fc'"):
        verify(graph)


def test_verify_use_before_definition() -> None:
    graph = Graph((_input(), _relu("act", "fc"), _linear("fc", "input")), "act")
    with pytest.raises(ModelError, match="before they are defined") as info:
        verify(graph)
    assert "act" in str(info.value)


def test_verify_unknown_input() -> None:
    graph = Graph((_input(), _relu("act", "ghost")), "act")
    with pytest.raises(ModelError, match="ghost"):
        verify(graph)


def test_verify_wrong_shape() -> None:
    graph = Graph((_input(), _linear("fc", "input", shape=(5,))), "fc")
    with pytest.raises(ModelError, match=r"recorded shape \[5\]") as info:
        verify(graph)
    assert "onnx_fc" in str(info.value)  # named by its ONNX source


def test_verify_nan_parameter() -> None:
    weight = np.ones((3, 4), np.float32)
    weight[1, 2] = np.nan
    graph = Graph((_input(), _linear("fc", "input", weight)), "fc")
    with pytest.raises(ModelError, match="'weight' contains NaN") as info:
        verify(graph)
    assert info.value.node == "onnx_fc" and info.value.op == "Gemm"


@pytest.mark.parametrize("theta", [None, np.array([1.0, 0.0, 2.0], np.float32)],
                         ids=["missing", "zero"])
def test_verify_neuron_threshold(theta: np.ndarray | None) -> None:
    params = {"v0": np.zeros(3, np.float32)} | ({} if theta is None else {"theta": theta})
    neuron = Node("spike", "if", ("fc",), params=params, shape=(3,))
    graph = Graph((_input(), _linear("fc", "input"), neuron), "spike")
    with pytest.raises(ModelError, match="threshold must be positive"):
        verify(graph)


def test_verify_missing_output() -> None:
    graph = Graph((_input(), _linear("fc", "input")), "nowhere")
    with pytest.raises(ModelError, match="nowhere"):
        verify(graph)


def test_verify_needs_input_first() -> None:
    graph = Graph((_linear("fc", "input"), _input()), "fc")
    with pytest.raises(ModelError, match="input node"):
        verify(graph)


def test_verify_unknown_op() -> None:
    graph = Graph((_input(), Node("odd", "sigmoid", ("input",), shape=(4,))), "odd")
    with pytest.raises(ModelError, match="unknown IR op 'sigmoid'"):
        verify(graph)


def test_input_shape_cannot_override_fixed_axes(tmp_path: Path) -> None:
    model = parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        net (float[N, 1, 8, 8] x) => (float[N, 1, 8, 8] y) { y = Relu(x) }""")
    path = tmp_path / "fixed.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError, match="only dynamic axes"):
        load_onnx(path, input_shape=(1, 9, 9))
    assert load_onnx(path, input_shape=(1, 8, 8)).input.shape == (1, 8, 8)


def test_identity_model_runs(tmp_path: Path) -> None:
    model = parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        net (float[N, 3] x) => (float[N, 3] y) { y = Identity(x) }""")
    path = tmp_path / "id.onnx"
    onnx.save(model, path)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(run(load_onnx(path), x), x)
