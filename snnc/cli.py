"""The `snnc` command line.

    snnc compile MODEL.onnx [--target numpy|lava|loihi|nir|netx] [-o OUT.snn] [--calib C.npz]
                 [--timesteps T] [--norm max|percentile:P] [--dump-ir after-all|PASS,...]
                 [--dump-dir DIR]
    snnc MODEL.onnx --target T ...        (same as compile)
    snnc run OUT.snn --data DATA.npz [--timesteps T] [--json FILE]
    snnc eval MODEL.onnx --data TEST.npz --calib CALIB.npz --timesteps 1,2,4,... [--json FILE]
              [--report DIR]
    snnc inspect MODEL.onnx|OUT.snn [--format text|json|dot]
    snnc import NET.nir [-o OUT.snn] [--target numpy|lava|loihi] [--reset zero|subtract]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from snnc.compiler.errors import SnncError, UsageError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
COMMANDS = ("compile", "run", "eval", "inspect", "import")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on its own; keep that, add help
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--timesteps '{text}': expected integers like 32 or 1,2,4,8") from None
    if not values or min(values) < 1:
        raise UsageError(f"--timesteps '{text}': time steps must be positive integers")
    if max(values) > 100_000:
        raise UsageError(f"--timesteps '{text}': more than 100000 steps is not sensible")
    return values


def _timesteps(text: str) -> int:
    values = _ints(text)
    if len(values) != 1:
        raise UsageError(f"--timesteps '{text}': expected one positive integer")
    return values[0]


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise UsageError(f"--input-shape '{text}': expected positive sizes like 1,28,28")
    return dims


def _add_compile_options(p: argparse.ArgumentParser, several_presets: bool = False) -> None:
    from snnc.compiler.passes.calibrate import METHODS
    from snnc.compiler.passes.convert import NEURONS
    from snnc.compiler.passes.shift_bias import MODES
    from snnc.compiler.targets import having, words
    from snnc.presets import DEFAULT_PRESET, PRESETS

    p.add_argument("--calib", metavar="CALIB.npz", help="calibration data (.npz with x) for "
                   "data-based thresholds and layer-wise calibration; needed for ReLU models")
    p.add_argument("--preset", default=DEFAULT_PRESET,
                   metavar="|".join(PRESETS) + (",..." if several_presets else ""),
                   help=f"a set of conversion methods (default {DEFAULT_PRESET}); the flags "
                   "below override its parts" + ("; a comma list compares several"
                                                  if several_presets else ""))
    p.add_argument("--norm", metavar="mmse|max|percentile:P",
                   help="thresholds minimising the quantization error at T (mmse), or from "
                   "the max or P-th percentile of activations")
    p.add_argument("--per-channel", action="store_true", help="one threshold per channel")
    p.add_argument("--shift", choices=MODES,
                   help="half-step shift: V(0)=theta/2 (v0), theta/(2T) input current per "
                   "step (input), the same in the layer bias (bias), or none")
    p.add_argument("--calibrate", choices=METHODS,
                   help="layer-by-layer correction for T: per-channel bias, per-neuron "
                   "initial potential, both, or none")
    p.add_argument("--neuron", choices=("auto", *NEURONS),
                   help="if: reset by subtraction; lif: Lava's stock LIF, reset to zero; "
                   "signed: may emit a negative spike to take back an early one (on "
                   "lava/loihi a signed graded payload); sigma-delta: Lava's stock "
                   "SigmaDelta (graded messages of the change of each ReLU activation; "
                   "settles to the ANN; ReLU models only); auto "
                   "(default): signed for --target numpy, if for the Lava targets")
    p.add_argument("--maxpool", choices=("relu", "spiking"),
                   help="relu: max pooling as tournaments of ReLU layers, max(a, b) = "
                   "relu(a - b) + b (what chip neurons compute; default for sigma-delta); "
                   "spiking: snnc's spiking max pool (default for IF neurons; a host process "
                   "on Lava)")
    graded = words(having(lambda t: t.max_spike_bits > 1))
    p.add_argument("--spike-bits", type=int, default=1, metavar="B",
                   help="graded spikes: each message carries up to 2^B - 1 counts of theta "
                   f"(default 1: binary spikes; {graded})")
    p.add_argument("--max-spike-bits", type=int, metavar="M", help="let tuning choose the "
                   "spike bits in B..M on the calibration data: the fewest that agree with "
                   "the ANN best (default M = B: no search)")
    p.add_argument("--decode", default="potential", choices=("potential", "spikes"),
                   help="output from the last layer's accumulated potential (default) or from "
                   "spike counts of a spiking last layer")
    p.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                   help="sample shape for models whose input size is dynamic")
    _add_engine_option(p)


def _add_engine_option(p: argparse.ArgumentParser) -> None:
    from snnc.backends.numpy.simulator import DEFAULT_ENGINE, ENGINES

    p.add_argument("--engine", default=DEFAULT_ENGINE, choices=ENGINES,
                   help="the NumPy simulator's engine (for compile: what tuning and "
                   "calibration simulate on): fast (default; convolutions and pooling in "
                   "onnxruntime, IF updates compiled with numba, ~2x faster), reference "
                   "(numpy only) or torch (CPU or CUDA, --device; needs snnc[torch]); they "
                   "agree up to float rounding")
    p.add_argument("--device", metavar="cpu|cuda|cuda:N", help="where --engine torch runs "
                   "(default cpu)")


def _target(name: str) -> str:
    """A --target value; an unknown one is refused with the list of targets (before
    argparse's choices would be, with a less helpful message)."""
    from snnc.compiler.targets import target

    return target(name).name


def build_parser() -> argparse.ArgumentParser:
    from snnc.compiler.ir.printer import FORMATS
    from snnc.compiler.targets import DEFAULT_TARGET, RUN_BACKENDS, TARGETS, having
    from snnc.version import __version__

    parser = _Parser(prog="snnc", description="Compile ONNX CNNs into spiking neural "
                     "networks (numpy simulator; Lava/Loihi 2).")
    parser.add_argument("--version", action="version", version=f"snnc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("compile", help="compile an ONNX model to an .snn artifact")
    p.add_argument("model", help="ONNX model file")
    summaries = [t.summary for t in TARGETS.values()]
    p.add_argument("--target", default=DEFAULT_TARGET, type=_target, choices=tuple(TARGETS),
                   help=f"{', '.join(summaries[:-1])} or {summaries[-1]}")
    p.add_argument("-o", "--output", metavar="OUT.snn", help="artifact path "
                   "(default: MODEL.snn next to the model)")
    p.add_argument("--timesteps", type=_timesteps, default=32, metavar="T",
                   help="default number of time steps to run (default 32)")
    _add_compile_options(p)
    p.add_argument("--max-chips", type=int, metavar="N", help="lava/loihi: refuse a network "
                   "that needs more than N Loihi 2 chips (default: as many as it needs)")
    p.add_argument("--dump-ir", metavar="after-all|PASS,...", help="write the IR after every "
                   "pass, or after the named passes ('import' = before any pass)")
    p.add_argument("--dump-dir", metavar="DIR", help="folder for --dump-ir files")
    p.add_argument("--dump-format", default="text", choices=sorted(FORMATS))

    p = sub.add_parser("run", help="run a compiled network on data")
    p.add_argument("artifact", help=".snn file written by snnc compile, or a netx SDNN .net "
                   "file (--target netx --neuron sigma-delta)")
    p.add_argument("--data", required=True, metavar="DATA.npz", help=".npz with x (and y)")
    p.add_argument("--timesteps", type=_timesteps, metavar="T", help="time steps (default: the "
                   "artifact's)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--backend", default=RUN_BACKENDS[0], choices=RUN_BACKENDS,
                   help="numpy simulator (default) or Lava's CPU simulation (needs lava-nc)")
    p.add_argument("--compare", choices=("numpy",), help="with --backend lava: also run "
                   "NumPy and exit 0 only if spikes and outputs agree")
    _add_engine_option(p)

    p = sub.add_parser("eval", help="ANN vs SNN accuracy at several time steps")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--data", required=True, metavar="TEST.npz", help=".npz with x and y")
    p.add_argument("--timesteps", default="1,2,4,8,16,32,64", metavar="T1,T2,...")
    _add_compile_options(p, several_presets=True)
    p.add_argument("--per-layer", action="store_true", help="also report, per layer and T, "
                   "the SNN's error against the ANN activation and the firing statistics")
    p.add_argument("--bound", action="store_true", help="also report, per T, the accuracy "
                   "of the rate-coding bound (every IF layer's T-step staircase for a "
                   "constant current): how much of the loss is activation quantization")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--report", metavar="DIR", help="also write plots (PNG) and a "
                   "self-contained report.html into DIR (implies --per-layer, which two of "
                   "the plots need)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="shard the test set over the "
                   "workers of this Dask scheduler (tcp://HOST:8786; needs snnc[dask]); the "
                   "same results as one process")
    p.add_argument("--workers", type=int, metavar="N", help="the same on a local Dask "
                   "cluster of N worker processes (loopback only)")

    p = sub.add_parser("import", help="read a NIR graph from another SNN tool into an .snn")
    p.add_argument("nir_file", metavar="NET.nir", help="NIR graph file (nir.write)")
    p.add_argument("-o", "--output", metavar="OUT.snn", help="artifact path (default: "
                   "NET.snn next to the file)")
    p.add_argument("--target", default=DEFAULT_TARGET, type=_target,
                   choices=having(lambda t: t.imports_nir))
    p.add_argument("--timesteps", type=_timesteps, default=32, metavar="T",
                   help="default number of time steps to run (default 32)")
    p.add_argument("--reset", choices=("zero", "subtract"), help="read every IF as resetting "
                   "to zero (NIR's meaning) or by subtraction (Sinabs' IAF); default: the "
                   "file's snnc metadata, else zero")
    p.add_argument("--ignore-metadata", action="store_true", help="plain NIR semantics: "
                   "ignore snnc's reset/v_initial metadata")
    p.add_argument("--dt", type=float, default=1e-4, help="time step for LIF time "
                   "constants (default 1e-4, snnTorch's)")

    p = sub.add_parser("inspect", help="print the IR of a model or an artifact")
    p.add_argument("path", help="an ONNX model or an .snn artifact")
    p.add_argument("--format", default="text", choices=sorted(FORMATS))
    p.add_argument("--layers", action="store_true", help="a table per layer with totals")
    p.add_argument("--placement", action="store_true", help="every Lava process of a lava/"
                   "loihi artifact: its class and whether it runs on chip or host, and why "
                   "(--format json: a list of objects)")
    p.add_argument("--svg", metavar="FILE", help="also render the graph with Graphviz")
    return parser


def _normalise_argv(argv: Sequence[str]) -> list[str]:
    """`snnc MODEL.onnx ...` means `snnc compile MODEL.onnx ...`."""
    argv = list(argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        if not Path(argv[0]).exists():
            raise UsageError(f"'{argv[0]}' is neither a command ({', '.join(COMMANDS)}) nor "
                             "an existing model file (see `snnc --help`)")
        argv.insert(0, "compile")
    return argv


def _write_json(path: str, data: Any) -> None:
    from snnc.compiler.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _compile_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"preset": args.preset, "norm": args.norm, "per_channel": args.per_channel,
            "shift": args.shift, "calibrate": args.calibrate, "neuron": args.neuron,
            "decode": args.decode, "maxpool": args.maxpool, "input_shape": args.input_shape,
            "engine": args.engine,
            "device": args.device,
            "max_chips": getattr(args, "max_chips", None), "spike_bits": args.spike_bits,
            "max_spike_bits": args.max_spike_bits}


def cmd_compile(args: argparse.Namespace) -> int:
    import snnc
    from snnc.compiler.targets import resolve

    entry = snnc.api.check_target(args.target)  # fail before any work
    output = Path(args.output) if args.output else Path(args.model).with_suffix(entry.suffix)
    from .progress import progress_bar

    # one tick per tuning candidate simulated and per layer calibrated (nothing otherwise)
    with progress_bar(None, "tuning and calibrating", unit="pass") as bar:
        net = snnc.compile(args.model, target=args.target, calib=args.calib,
                           timesteps=args.timesteps, dump_ir=args.dump_ir,
                           dump_dir=args.dump_dir, dump_format=args.dump_format,
                           progress=bar.update, **_compile_kwargs(args))
    notes = net.write(output)  # the target's writer: what its format cannot express
    for note in notes:
        print(f"snnc: warning: {note}", file=sys.stderr)
    if notes and args.calib and entry.agreement:  # what a plain reader will not reproduce
        x = snnc.runtime.load_data(args.calib)[0][:128]
        agree = resolve(entry.agreement)(net, x)
        print(f"snnc: warning: {entry.reader} predicts as snnc does on {100 * agree:.1f}% of "
              f"{len(x)} calibration samples; {entry.exact}", file=sys.stderr)
    neurons = sum(int(_prod(n.shape)) for n in net.graph.nodes if n.op in ("if", "sd"))
    layers = sum(1 for n in net.graph.nodes if n.op in ("if", "sd"))
    print(f"compiled {args.model} -> {output}")
    print(f"  target {net.target}, {layers} spiking layers, {neurons} neurons, "
          f"preset {net.options['preset']}, thresholds: {net.options['norm']}, "
          f"shift: {net.options['shift']}, calibration: {net.options['calibrate']}, "
          f"neurons: {net.options['neuron']}, "
          + (f"spike bits: {net.options['spike_bits']}, " if "spike_bits" in net.options
             else "")
          + f"default T={net.default_timesteps}")
    if net.graph.meta.get("neuron") == "sigma-delta":
        _print_sigma_delta(net.graph)
    for row in net.options.get("tuned", []):  # what --norm/--calibrate auto compared
        samples = f"{row['samples']} " if row.get("samples") else ""
        print(f"  tried {row['candidate']}: agrees with the ANN on "
              f"{100 * row['agreement']:.1f}% of {samples}calibration samples, output error "
              f"{row['error']:.3f}" + (" (stopped there: it could not win)"
                                       if row.get("stopped") else ""))
    if net.options.get("tuning_note"):
        print(f"  {net.options['tuning_note']}")
    _print_loihi_summary(net.graph)
    if args.dump_ir:
        print(f"  IR dumps in {args.dump_dir}")
    return 0


def _print_loihi_summary(graph: Any) -> None:
    """Per-layer quantization error and the neurocore mapping (lava/loihi targets)."""
    from snnc.compiler.loihi.map_cores import format_mapping
    from snnc.compiler.loihi.quantize_weights import quant_report

    report = quant_report(graph)
    if report:
        print("  quantization: layer, relative error of weights / threshold / bias, weight "
              "bits, exponent, scale kept to fit the 24-bit state")
        for name, q in report:
            if "weight_bits" not in q:  # input-fed: no synapses
                continue
            print(f"    {name:24s} {q.get('weight_rel_err', 0):.2e} "
                  f"{q.get('theta_rel_err', 0):.2e} {q.get('bias_rel_err', 0):.2e} "
                  f"{q['weight_bits']:2d} {q['weight_exp']:2d} {q.get('input_fit', 1):.3g}")
    if "mapping" in graph.meta:
        print("  resources (Loihi 2):")
        print(format_mapping(graph.meta["mapping"]))
        from snnc.backends.lava.placement import summary

        print(f"  {summary(_placement(graph))}")


def _placement(graph: Any) -> list[dict[str, str]]:
    """backends/lava/placement.py's table of the Lava processes a lowered graph becomes."""
    from snnc.backends.lava.placement import rows
    from snnc.backends.lava.sd_plan import build_any_plan as build_plan
    from snnc.compiler.contracts import QUANTIZED_WEIGHTS, SYNAPSES, facts

    have = facts(graph)
    if SYNAPSES not in have:
        raise UsageError("--placement needs an artifact compiled with --target lava or loihi "
                         "(its Lava processes); this one has no synapse layers")
    return rows(build_plan(graph, "fixed" if QUANTIZED_WEIGHTS in have else "float"))


def _prod(shape: Sequence[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from snnc.compiler.targets import target
    from snnc.runtime import load, load_data

    from .progress import progress_bar

    if Path(args.artifact).suffix == target("netx").suffix:  # lava-dl's netx SDNN file
        return _run_netx(args)
    net = load(args.artifact)
    x, y = load_data(args.data)
    if args.compare:
        return _run_compare(args, net, x)
    with progress_bar(len(x), "simulating") as bar:
        result = net.run(x, args.timesteps, progress=bar.update, backend=args.backend,
                         engine=args.engine, device=args.device)
    report: dict[str, Any] = {"artifact": Path(args.artifact).name, "samples": int(len(x)),
                              "timesteps": result.timesteps,
                              "spikes_per_sample": result.spikes_per_sample,
                              "messages_per_sample": result.spikes_per_sample,
                              "payload_per_sample": result.payload_per_sample,
                              "spikes_per_layer": {name: float(s.mean()) for name, s
                                                   in result.spikes.items()},
                              "predictions": result.predictions.tolist()}
    line = f"{len(x)} samples, T={result.timesteps}"
    if y is not None:
        report["accuracy"] = result.accuracy(y)
        line += f", accuracy {100 * report['accuracy']:.2f}%"
    print(line + f", {result.spikes_per_sample:.1f} messages/sample, "
          f"{result.payload_per_sample:.1f} payload/sample")
    if args.json:
        _write_json(args.json, report)
    return 0


def _run_netx(args: argparse.Namespace) -> int:
    """A netx SDNN file: NumPy, bit-exact to lava-dl's reader in Lava's fixed_pt simulation,
    or lava-dl itself (--backend lava); --timesteps: steps per sample (default: settled)."""
    import numpy as np

    from snnc.compiler.loihi.formats import STATE_MAX
    from snnc.runtime import load_data
    from snnc.runtime.netx_run import run_netx, simulate_netx_file

    if args.compare:  # the NumPy run is bit-exact to lava-dl's by construction (tested)
        raise UsageError("--compare needs a .snn artifact; a netx file runs with --backend "
                         "numpy (bit-exact to lava-dl's reader) or lava (lava-dl itself)")
    x, y = load_data(args.data)
    messages = None
    if args.backend == "numpy":
        outputs, run = simulate_netx_file(args.artifact, x, args.timesteps)
        messages = float(sum(m.sum() for m in run.messages.values()) / max(len(x), 1))
        wide = {name: int(p).bit_length() + 1 for name, p in run.peak.items()
                if p > STATE_MAX}
        if wide:  # Lava's CPU models hold int32; a chip would overflow these layers
            print("snnc: warning: beyond Loihi 2's 24-bit state on these samples (Lava's CPU "
                  "models hold them; a chip would not): " + ", ".join(
                      f"{name} ({bits} bits)" for name, bits in wide.items()), file=sys.stderr)
    else:
        outputs = run_netx(args.artifact, x, backend=args.backend, steps=args.timesteps)
    predictions = np.asarray(outputs).reshape(len(x), -1).argmax(axis=1)
    report: dict[str, Any] = {"artifact": Path(args.artifact).name, "samples": int(len(x)),
                              "backend": args.backend, "predictions": predictions.tolist()}
    line = f"{len(x)} samples, netx SDNN ({args.backend})"
    if y is not None:
        report["accuracy"] = float(np.mean(predictions == np.asarray(y).reshape(-1)))
        line += f", accuracy {100 * report['accuracy']:.2f}%"
    if messages is not None:
        report["messages_per_sample"] = messages
        line += f", {messages:.1f} messages/sample"
    print(line)
    if args.json:
        _write_json(args.json, report)
    return 0


def _run_compare(args: argparse.Namespace, net: Any, x: Any) -> int:
    from snnc.runtime.lava_run import compare_with_numpy

    from .progress import progress_bar

    if args.backend != "lava":
        raise UsageError("--compare numpy compares a Lava run with NumPy: add --backend lava")
    t = args.timesteps or net.default_timesteps
    with progress_bar(len(x), "lava") as bar:
        cmp = compare_with_numpy(net, x, t, progress=bar.update)
    from snnc.compiler.targets import target

    kind = "bit-exact (fixed point)" if target(net.target).fixed_point else "float"
    print(f"lava vs numpy, {kind}, {len(x)} samples, T={t}: "
          + ("AGREE" if cmp.agree else "DIFFER"))
    for name, n in cmp.mismatches.items():
        print(f"  {name:24s} {n} mismatches")
    print(f"  max output difference {cmp.max_output_diff:.3g}")
    if args.json:
        _write_json(args.json, {"agree": cmp.agree, "mismatches": cmp.mismatches,
                                "max_output_diff": cmp.max_output_diff})
    return 0 if cmp.agree else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_table

    options = _compile_kwargs(args)
    presets = [p.strip() for p in options.pop("preset").split(",") if p.strip()]
    wanted: dict[str, Any] = {"per_layer": args.per_layer}
    if args.report:  # the report's plots need the per-layer statistics
        from .report import EVALUATE_OPTIONS

        wanted.update(EVALUATE_OPTIONS)
    runner = None
    if args.scheduler is not None or args.workers is not None:
        from snnc.runtime.distributed import Cluster

        runner = Cluster(args.scheduler, args.workers)
    try:
        report = evaluate(args.model, args.data, _ints(args.timesteps), calib=args.calib,
                          presets=presets, bound=args.bound, runner=runner, **wanted,
                          **options)
    finally:
        if runner is not None:
            runner.close()
    print(format_table(report))
    if args.json:
        _write_json(args.json, report)
    if args.report:
        from .report import write_report

        print(f"report: {write_report(report, args.report)}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from snnc.compiler.ir.printer import FORMATS
    from snnc.frontends.onnx import load_onnx
    from snnc.runtime import load

    path = Path(args.path)
    graph = load(path).graph if path.suffix == ".snn" else load_onnx(path)
    if args.placement:
        from snnc.backends.lava.placement import format_table

        table = _placement(graph)
        sys.stdout.write(json.dumps(table, indent=2) + "\n" if args.format == "json"
                         else format_table(table))
    elif args.layers:
        from .layers import format_layers, layers_json

        sys.stdout.write(layers_json(graph) if args.format == "json" else format_layers(graph))
    else:
        sys.stdout.write(FORMATS[args.format](graph))
    if args.svg:
        _render_svg(FORMATS["dot"](graph), args.svg)
    return 0


def _render_svg(dot_text: str, output: str) -> None:
    import shutil
    import subprocess

    from snnc.compiler.fileio import atomic_write_bytes

    dot = shutil.which("dot")
    if dot is None:
        raise UsageError("--svg needs Graphviz's `dot` program: install it (Debian: apt-get "
                         "install graphviz) or write --format dot and render it elsewhere")
    result = subprocess.run([dot, "-Tsvg"], input=dot_text.encode(), capture_output=True,
                            check=False)
    if result.returncode:
        raise UsageError(f"Graphviz failed: {result.stderr.decode(errors='replace')[:500]}")
    atomic_write_bytes(output, result.stdout)


def cmd_import(args: argparse.Namespace) -> int:
    import snnc

    output = Path(args.output) if args.output else Path(args.nir_file).with_suffix(".snn")
    net = snnc.load_nir(args.nir_file, target=args.target, timesteps=args.timesteps,
                        reset=args.reset, metadata=not args.ignore_metadata, dt=args.dt)
    net.save(output)
    layers = sum(1 for n in net.graph.nodes if n.op == "if")
    print(f"imported {args.nir_file} -> {output}")
    print(f"  target {net.target}, {layers} spiking layers, neurons: {net.options['neuron']}, "
          f"default T={net.default_timesteps}")
    return 0


def _print_sigma_delta(graph: Any) -> None:
    from snnc.compiler.passes.delta_thresholds import synapse_depth

    chosen = graph.meta.get("delta_thresholds")
    if chosen:
        print(f"  delta thresholds: {chosen['ratio']:g} x each layer's activation scale, "
              f"refined per layer on {chosen['samples']} calibration samples: "
              f"{chosen['messages_per_sample']:.1f} messages/sample")
    else:
        print("  delta thresholds: the default ratio (no --calib data to choose them on)")
    print(f"  a static sample settles at T=1 (the reference clock); on Loihi after "
          f"{synapse_depth(graph)} steps (one per synapse layer); later steps send nothing")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(_normalise_argv(argv))
        handler = {"compile": cmd_compile, "run": cmd_run, "eval": cmd_eval,
                   "inspect": cmd_inspect, "import": cmd_import}[args.command]
        # values that overflow float32 or turn NaN are caught where they matter (weights at
        # import, activations in calibration) with an error naming the node; numpy's
        # warnings about them would only bury that message
        import numpy as np

        with np.errstate(over="ignore", invalid="ignore"):
            return handler(args)
    except SnncError as exc:
        print(f"snnc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("snnc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug in snnc: short message, full traceback in a file
        with tempfile.NamedTemporaryFile("w", prefix="snnc-crash-", suffix=".txt",
                                         delete=False) as f:
            traceback.print_exc(file=f)
        print(f"snnc: internal error (a bug in snnc); the traceback was written to {f.name}. "
              "Please report it with that file.", file=sys.stderr)
        return EXIT_INTERNAL
