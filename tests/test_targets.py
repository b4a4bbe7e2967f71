"""The target table (compiler/targets.py): every target is one entry there, and the API, the
CLI, the pass manager and the runtime read it; no other module lists target names."""

from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.cli import build_parser
from snnc.compiler import targets
from snnc.compiler.errors import UsageError
from snnc.compiler.passes.manager import PASSES, target_passes, writer_passes
from snnc.compiler.targets import RUN_BACKENDS, TARGETS, having, resolve

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
SOURCES = ("snnc", "compiler", "backends", "runtime", "frontends")  # the package, not tests


def _choices(command: str, flag: str) -> tuple[str, ...]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if flag in a.option_strings)
    return tuple(action.choices)


def test_every_entry_is_complete() -> None:
    for name, entry in TARGETS.items():
        assert entry.name == name and entry.suffix.startswith(".")
        assert set(target_passes(name)) <= set(PASSES)  # the pass manager's own check
        assert set(writer_passes(name)) <= set(PASSES)
        assert callable(resolve(entry.writer)) and callable(resolve(entry.simulate))
        assert entry.lava in (None, "float", "fixed")
        assert entry.agreement is None or callable(resolve(entry.agreement))


def test_importing_the_table_loads_no_backend() -> None:
    import subprocess
    import sys

    code = ("import sys, snnc.compiler.targets; print(' '.join(m for m in sys.modules "
            "if m.startswith('snnc')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert [m for m in loaded if m.split(".")[1:2] in (["backends"], ["runtime"], ["api"],
                                                       ["cli"])] == []


def test_the_table_drives_the_cli_choices() -> None:
    assert _choices("compile", "--target") == tuple(TARGETS)
    assert _choices("import", "--target") == having(lambda t: t.imports_nir)
    assert _choices("run", "--backend") == RUN_BACKENDS
    with pytest.raises(UsageError, match="--target 'bogus' is not one of: " +
                       ", ".join(TARGETS)):
        build_parser().parse_args(["compile", "m.onnx", "--target", "bogus"])


def test_a_new_entry_is_a_new_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """One entry: the CLI offers it, the API compiles for it, the runtime runs it."""
    twin = dataclasses.replace(TARGETS["numpy"], name="twin", summary="twin")
    monkeypatch.setitem(TARGETS, "twin", twin)
    assert "twin" in _choices("compile", "--target")
    with np.load(DIGITS / "calib.npz") as f:
        x = f["x"][:4]
    net = snnc.compile(DIGITS / "model.onnx", target="twin", calib=x, timesteps=4,
                       preset="rate-p99.99", neuron="if")
    assert net.target == "twin" and net.run(x).outputs.shape[0] == 4


@pytest.mark.parametrize("capability, kwargs, message", [
    ("signed_neurons", {"neuron": "signed"}, "--neuron signed.*--target numpy supports"),
    ("sigma_delta", {"neuron": "sigma-delta"}, "--neuron sigma-delta.*--target numpy"),
    ("max_spike_bits", {"neuron": "if", "spike_bits": 2}, "--target numpy cannot express"),
])
def test_api_refusals_come_from_capabilities(monkeypatch: pytest.MonkeyPatch, capability: str,
                                             kwargs: dict[str, object], message: str) -> None:
    """Take a capability away from numpy and the API refuses what needs it, before work."""
    value = 1 if capability == "max_spike_bits" else False
    monkeypatch.setitem(TARGETS, "numpy",
                        dataclasses.replace(TARGETS["numpy"], **{capability: value}))
    with pytest.raises(UsageError, match=message):
        snnc.compile(DIGITS / "model.onnx", preset="rate-p99.99", **kwargs)


def test_nir_refuses_what_it_cannot_hold_before_compiling() -> None:
    for neuron in ("signed", "sigma-delta"):
        with pytest.raises(UsageError, match=f"--neuron {neuron}.*NIR's IF nodes"):
            snnc.compile(DIGITS / "model.onnx", target="nir", neuron=neuron,
                         preset="rate-p99.99")


def test_lava_refuses_a_target_without_a_lava_mode() -> None:
    net = snnc.compile(DIGITS / "model.onnx", calib=DIGITS / "calib.npz", neuron="if",
                       preset="rate-p99.99", timesteps=2)
    with pytest.raises(UsageError, match="--target lava \\(float\\) or --target loihi "
                       "\\(fixed point\\) to run in Lava"):
        net.run(np.zeros((1, *net.graph.input.shape), np.float32), 2, backend="lava")


# ------------------------------------------------------------ no other list of target names

def _target_name(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and node.value in TARGETS else None


def _lists_of_targets(tree: ast.AST) -> list[ast.AST]:
    """Literal collections (tuples, lists, sets, dict keys) naming two targets or more, and
    comparisons of something called target with a target's name."""
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        items: list[ast.AST] = []
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = list(node.elts)
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        names = {n for n in map(_target_name, items) if n}
        # ("numpy", "lava") alone can be the run backends' list (targets.RUN_BACKENDS)
        if len(names) >= 2 and not names <= set(RUN_BACKENDS):
            found.append(node)
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_target_name(s) for s in sides) and any(
                    "target" in ast.unparse(s) for s in sides if not _target_name(s)):
                found.append(node)
    return found


def test_no_other_module_lists_target_names() -> None:
    table = Path(targets.__file__).resolve()
    found = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.resolve() == table:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            found += [f"{path.relative_to(ROOT)}:{n.lineno}: {ast.unparse(n)[:80]}"
                      for n in _lists_of_targets(tree)]
    assert found == []


def test_the_scan_finds_what_it_looks_for() -> None:
    code = ('A = ("numpy", "nir")\nB = {"lava": 1, "netx": 2}\n'
            'if net.target == "loihi": pass\nC = ("numpy", "lava")\nD = {"nir": 1}\n')
    assert len(_lists_of_targets(ast.parse(code))) == 3


def test_the_netx_writer_lowers_a_network_compiled_for_another_target(
        digits_model: Path, digits_calib: Path, tmp_path: Path) -> None:
    """write_netx of a numpy-target network applies netx's writer passes from the table and
    writes the file `--target netx` writes."""
    pytest.importorskip("h5py")
    from snnc.backends.netx import write_netx

    kw = {"calib": digits_calib, "preset": "rate-p99.99"}
    assert writer_passes("netx") == ("lower-synapses", "quantize-weights")
    write_netx(snnc.compile(digits_model, **kw).graph, tmp_path / "a.net")
    snnc.compile(digits_model, target="netx", **kw).write(tmp_path / "b.net")
    assert (tmp_path / "a.net").read_bytes() == (tmp_path / "b.net").read_bytes()

