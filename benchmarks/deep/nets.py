"""VGG-16 and ResNet-20 for the deep benchmark, importable with torch alone (both venvs).

    from nets import build            # with benchmarks/deep on sys.path
    model = build("vgg16", width=0.5)

The definitions are benchmarks/loihi_scale/make_models.py's own (VGG16_CFG, vgg16, _resnet,
resnet20), taken from its source with `ast` and run against benchmarks/peers/models_def.py's
conv_bn and BasicBlock: importing that file as a module would also import onnx, onnxruntime and
scikit-learn (through the peers' make_models.py), which SpikingJelly's venv
(benchmarks/peers/.venv) does not have. So snnc's exporter (make_models.py) and SpikingJelly's
converter (sj_eval.py) build the identical modules from one definition.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

from torch import nn

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "benchmarks" / "peers"
LOIHI_SCALE = ROOT / "benchmarks" / "loihi_scale" / "make_models.py"
if str(PEERS) not in sys.path:
    sys.path.insert(0, str(PEERS))
import models_def  # noqa: E402  (benchmarks/peers/models_def.py: torch only)

MODELS = ("vgg16", "resnet20")
_WANTED = {"VGG16_CFG", "vgg16", "_resnet", "resnet20"}


def _load_definitions() -> dict[str, Any]:
    tree = ast.parse(LOIHI_SCALE.read_text(), filename=str(LOIHI_SCALE))
    body = [node for node in tree.body
            if (isinstance(node, ast.FunctionDef) and node.name in _WANTED)
            or (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id in _WANTED)]
    found = {n.name if isinstance(n, ast.FunctionDef) else n.target.id for n in body}
    if found != _WANTED:
        raise ImportError(f"{LOIHI_SCALE}: missing {sorted(_WANTED - found)}")
    module = ast.Module(body=[ast.ImportFrom(module="__future__",
                                             names=[ast.alias("annotations")], level=0),
                              *body], type_ignores=[])
    ns: dict[str, Any] = {"nn": nn, "conv_bn": models_def.conv_bn,
                          "BasicBlock": models_def.BasicBlock, "__name__": "deep_nets"}
    exec(compile(ast.fix_missing_locations(module), str(LOIHI_SCALE), "exec"), ns)
    return ns


_DEFS = _load_definitions()
VGG16_CFG: list[int | str] = _DEFS["VGG16_CFG"]


def build(name: str, width: float = 1.0) -> nn.Sequential:
    """A freshly initialised model; `width` scales VGG-16's conv widths (ignored for ResNet)."""
    if name == "vgg16":
        return _DEFS["vgg16"](width)
    if name == "resnet20":
        return _DEFS["resnet20"]()
    raise ValueError(f"unknown model {name!r}; have {MODELS}")
