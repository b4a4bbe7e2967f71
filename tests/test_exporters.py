"""What the torch exporters write, as a user gets it: small torch models exported by TorchScript
(`dynamo=False`, also with `export_modules_as_functions=True`) and by dynamo (default, with
`optimize=False`, at opsets 22 and 23), imported by snnc and run by its IR executor against
onnxruntime. Dynamo writes CastLike constants (optimize=False), its weights in MODEL.onnx.data,
and AdaptiveAvgPool2d((7, 7)) on a non-divisible input as a Transpose/GatherND gather."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import snnc
from snnc.compiler.errors import InputFileError, ModelError
from snnc.compiler.executor import run
from snnc.frontends.onnx import import_model, load_onnx, prepare

torch = pytest.importorskip("torch")
nn = torch.nn

WAYS = {  # name: torch.onnx.export keyword arguments
    "torchscript": {"dynamo": False, "opset_version": 13},
    "torchscript-functions": {"dynamo": False, "opset_version": 17,
                              "export_modules_as_functions": True},
    "dynamo": {"dynamo": True},
    "dynamo-raw": {"dynamo": True, "optimize": False},
    # torch 2.13's dynamo exporter accepts the flag and writes no functions; kept because
    # users pass it
    "dynamo-functions": {"dynamo": True, "export_modules_as_functions": True},
    "dynamo-22": {"dynamo": True, "opset_version": 22},
    "dynamo-23": {"dynamo": True, "opset_version": 23, "optimize": False},
}
DYNAMO = [w for w in WAYS if w.startswith("dynamo")]


class Block(nn.Module):
    """A module class of its own, so that export_modules_as_functions writes a function."""

    def __init__(self, cin: int, cout: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, groups=groups)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU6()  # Clip(0, 6): CastLike'd bounds with optimize=False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _cnn() -> nn.Module:
    return nn.Sequential(Block(3, 6), nn.AvgPool2d(2), Block(6, 6), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(6 * 2 * 2, 5))


def _depthwise() -> nn.Module:
    """MobileNet-style: pointwise, depthwise, and a per-channel BN after pooling."""
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), Block(8, 8, groups=8), nn.AvgPool2d(2),
                         nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _vgg_head(channels: int = 6) -> nn.Module:
    """torchvision's VGG head on a small input: AdaptiveAvgPool2d((7, 7)) of a 16x16 map."""
    return nn.Sequential(Block(3, channels), nn.MaxPool2d(2), Block(channels, channels),
                         nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(),
                         nn.Linear(channels * 49, 16), nn.ReLU(), nn.Dropout(),
                         nn.Linear(16, 4))


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "cnn": (_cnn, (3, 8, 8)),
    "depthwise": (_depthwise, (3, 8, 8)),
    "vgg-head": (_vgg_head, (3, 32, 32)),
    "vgg-head-rect": (_vgg_head, (3, 20, 28)),  # 10x14 -> 7x7: one axis divides, one not
}


def _weights(model: nn.Module) -> nn.Module:
    """Random but fixed weights and BN statistics, in eval mode."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def export(name: str, way: str, folder: Path, **extra: object) -> Path:
    make, shape = MODELS[name]
    if way.startswith("dynamo"):
        pytest.importorskip("onnxscript")  # the dynamo exporter needs it
    path = folder / f"{name}-{way}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_weights(make()), (torch.zeros(2, *shape),), str(path),
                          **{**WAYS[way], **extra})
    return path


Export = Callable[..., Path]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Export:
    """export(), each model and way once per module (dynamo takes ~2 s an export)."""
    folder = tmp_path_factory.mktemp("exported")
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, way: str) -> Path:
        if (name, way) not in cache:
            cache[name, way] = export(name, way, folder)
        return cache[name, way]

    return get


def _copy(path: Path, folder: Path) -> Path:
    """The model and its external data file, copied to a folder a test may change."""
    for f in path.parent.glob(f"{path.name}*"):
        (folder / f.name).write_bytes(f.read_bytes())
    return folder / path.name


def _samples(shape: tuple[int, ...], n: int = 2) -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, (n, *shape)).astype(np.float32)


def _onnxruntime(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _matches(path: Path, shape: tuple[int, ...]) -> None:
    x = _samples(shape)
    ref = _onnxruntime(path, x)
    ours = run(load_onnx(path), x)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


@pytest.mark.parametrize("way", list(WAYS))
@pytest.mark.parametrize("name", ["cnn", "depthwise"])
def test_every_exporter_imports_and_matches_onnxruntime(name: str, way: str,
                                                        exported: Export) -> None:
    path = exported(name, way)
    model = onnx.load(path, load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    if way == "dynamo-raw":
        assert "CastLike" in ops  # what this test is about
    if way == "torchscript-functions":
        assert model.functions and ops <= {f.name for f in model.functions}
    _matches(path, MODELS[name][1])


@pytest.mark.parametrize("way", DYNAMO)
@pytest.mark.parametrize("name", ["vgg-head", "vgg-head-rect"])
def test_adaptive_pool_gather_becomes_average_pooling(name: str, way: str,
                                                      exported: Export) -> None:
    path = exported(name, way)
    ops = {n.op_type for n in onnx.load(path, load_external_data=False).graph.node}
    assert "GatherND" in ops  # dynamo's decomposition of the non-divisible pooling
    _matches(path, MODELS[name][1])
    graph = load_onnx(path)
    kinds = {n.op for n in graph.nodes}
    assert "avgpool" in kinds and "transpose" not in kinds
    pooled = next(n for n in graph.nodes if n.op == "reshape")  # the flatten after the pool
    assert graph.node(pooled.inputs[0]).shape == (6, 7, 7)


@pytest.mark.parametrize("spatial, out", [((1, 1), (7, 7)), ((2, 13), (7, 7)), ((12,), (5,)),
                                          ((9, 9), (4, 2))])
def test_adaptive_pool_sizes(spatial: tuple[int, ...], out: tuple[int, ...],
                             tmp_path: Path) -> None:
    """Outputs larger than the input (repeated windows), 1-d pooling, other output sizes."""
    pytest.importorskip("onnxscript")
    conv, pool = ((nn.Conv1d, nn.AdaptiveAvgPool1d) if len(spatial) == 1
                  else (nn.Conv2d, nn.AdaptiveAvgPool2d))
    model = _weights(nn.Sequential(conv(3, 4, 1), nn.ReLU(), pool(out), nn.Flatten()))
    path = tmp_path / "pool.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 3, *spatial),), str(path), dynamo=True)
    _matches(path, (3, *spatial))


def test_torchscript_refuses_the_same_head(tmp_path: Path) -> None:
    """Why only dynamo is tested on it: TorchScript does not export non-divisible pooling."""
    with pytest.raises(Exception, match="factor"):
        export("vgg-head", "torchscript", tmp_path)


@pytest.fixture(scope="module")
def vgg_head(exported: Export) -> Path:
    return exported("vgg-head", "dynamo-raw")


def test_adaptive_pool_head_converts(vgg_head: Path) -> None:
    """The pooling is linear IR ops between the spiking layers: the SNN follows the ANN."""
    x = np.abs(_samples((3, 32, 32), 16))
    net = snnc.compile(vgg_head, calib=x, timesteps=32)
    ann = run(load_onnx(vgg_head), x)
    snn = net.run(x, 64).outputs
    assert np.mean(snn.argmax(1) == ann.argmax(1)) >= 0.9
    assert float(np.abs(snn - ann).mean()) < 0.1 * float(np.abs(ann).mean())


def test_adaptive_pool_head_lowers_to_loihi(vgg_head: Path) -> None:
    """On Loihi the slices, pools and concats fold into the synapses of the layer after them;
    the bit-exact NumPy mode runs the result."""
    x = np.abs(_samples((3, 32, 32), 8))
    net = snnc.compile(vgg_head, calib=x, timesteps=16, target="loihi")
    ann = run(load_onnx(vgg_head), x)
    snn = net.run(x, 64).outputs
    assert np.mean(snn.argmax(1) == ann.argmax(1)) >= 0.75


NOT_POOLING = {  # gathers that are not average pooling: what the error says about each
    "nonlinear": ("""
        g (float[N, 2, 4, 4] x) => (float[N, 2, 4, 4] y) {
            t = Transpose <perm = [2, 3, 0, 1]> (x)
            [the_relu] r = Relu (t)
            y = Transpose <perm = [2, 3, 0, 1]> (r)
        }""", "'the_relu' (Relu) is not index arithmetic"),
    "scaled": ("""
        g (float[N, 2, 4, 4] x) => (float[N, 2, 4, 4] y) {
            t = Transpose <perm = [2, 3, 0, 1]> (x)
            s = Mul (t, two)
            y = Transpose <perm = [2, 3, 0, 1]> (s)
        }""", "do not compute one"),
    "undone": ("""
        g (float[N, 2, 4, 4] x) => (float[N, 2, 4, 4] y) {
            t = Transpose <perm = [2, 3, 0, 1]> (x)
            s = Mul (t, two)
            y = Transpose <perm = [2, 3, 0, 1]> (t)
        }""", None),
    "data_dependent": ("""
        g (float[N, 2, 4, 4] x) => (float[N, 2, 4, 4] y) {
            t = Transpose <perm = [2, 3, 0, 1]> (x)
            i = Cast <to = 7> (t)
            y = Relu (t)
        }""", "turns the activation into integers"),
}


@pytest.mark.parametrize("case", sorted(NOT_POOLING))
def test_a_gather_that_is_not_pooling_is_refused(case: str) -> None:
    text, says = NOT_POOLING[case]
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : 17]>\n{text}')
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.float32(2.0), "two"))
    if says is None:  # a transpose and its inverse, with a dead branch: the identity
        x = _samples((2, 4, 4))
        np.testing.assert_array_equal(run(import_model(prepare(model)), x), x)
        return
    with pytest.raises(ModelError) as info:
        import_model(prepare(model))
    message = str(info.value)
    assert message.startswith("node 't' (Transpose): perm [2, 3, 0, 1] moves the batch axis")
    assert "adaptive average pooling" in message and says in message


# ---- the weights file dynamo writes beside the model ---------------------------------------

def test_dynamo_external_data_loads(exported: Export) -> None:
    path = exported("cnn", "dynamo")
    data = path.parent / f"{path.name}.data"
    assert data.exists()  # dynamo keeps the weights outside the .onnx file
    _matches(path, MODELS["cnn"][1])


def test_dynamo_external_data_missing_names_the_file(exported: Export,
                                                      tmp_path: Path) -> None:
    path = _copy(exported("cnn", "dynamo"), tmp_path)
    (tmp_path / f"{path.name}.data").unlink()
    with pytest.raises(InputFileError) as info:
        load_onnx(path)
    message = str(info.value)
    assert f"'{path.name}.data'" in message and "missing" in message
    assert info.value.exit_code == 3


def test_dynamo_external_data_truncated(exported: Export, tmp_path: Path) -> None:
    path = _copy(exported("cnn", "dynamo"), tmp_path)
    data = tmp_path / f"{path.name}.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(InputFileError, match="truncated"):
        load_onnx(path)


def test_dynamo_without_external_data(tmp_path: Path) -> None:
    path = export("cnn", "dynamo", tmp_path, external_data=False)
    assert not (tmp_path / f"{path.name}.data").exists()
    _matches(path, MODELS["cnn"][1])
