"""Byte-level mutation fuzzing of valid ONNX files through `snnc compile`.

Each mutant (bit flips, byte overwrites, chunk deletion/duplication, truncation) of a seed model
is compiled in a worker process. Outcomes: `ok` (compiled), `our-error` (an SnncError: the exit
codes 2-6), `bug` (exit 70: an exception that is not ours), `crash` (the worker died) and
`hang` (over the per-mutant time limit). Anything but ok / our-error is a finding.

    .venv/bin/python benchmarks/fuzz/fuzz_onnx.py --mutants 1000   (or tests/fuzz_onnx.py)

It lives among the tests (tests/test_fuzz.py runs a short round); benchmarks/fuzz/fuzz_onnx.py
is the same command line for long runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [ROOT / "examples" / "digits" / "model.onnx", ROOT / "tests" / "corpus" /
         "good_dense.onnx", ROOT / "tests" / "data" / "digits_vgg_maxpool.onnx"]
CALIB = {"model.onnx": ROOT / "examples" / "digits" / "calib.npz",
         "good_dense.onnx": ROOT / "tests" / "corpus" / "calib_good.npz",
         "digits_vgg_maxpool.onnx": ROOT / "examples" / "digits" / "calib.npz"}


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    kind = rng.integers(5)
    for _ in range(int(rng.integers(1, 6))):
        if not b:
            break
        k = int(rng.integers(len(b)))
        if kind == 0:
            b[k] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            b[k] = int(rng.integers(256))
        elif kind == 2:
            del b[k:k + int(rng.integers(1, 64))]
        elif kind == 3:
            b[k:k] = b[k:k + int(rng.integers(1, 64))]
        else:
            del b[k:]
    return bytes(b)


class _Timeout(BaseException):  # not Exception: snnc's handlers must not catch it
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def worker(seed: int, start: int, count: int, limit: float) -> None:
    """Compile mutants start..start+count-1, printing one JSON line per outcome."""
    from snnc.cli import main

    signal.signal(signal.SIGALRM, _alarm)
    sink = open(os.devnull, "w")  # noqa: SIM115 - silence snnc's messages for the whole run
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(start, start + count):
            rng = np.random.default_rng([seed, index])
            source = SEEDS[index % len(SEEDS)]
            path = Path(tmp) / f"m{index}.onnx"
            path.write_bytes(mutate(source.read_bytes(), rng))
            # the cheap preset: mutants exercise the importer and the passes' checks; the
            # default's tuning simulations would only multiply the time per mutant
            args = ["compile", str(path), "--calib", str(CALIB[source.name]), "-o",
                    str(Path(tmp) / "out.snn"), "--timesteps", "4", "--preset", "rate-p99.99"]
            signal.setitimer(signal.ITIMER_REAL, limit)
            stderr, sys.stderr = sys.stderr, sink
            stdout, sys.stdout = sys.stdout, sink
            try:
                code = main(args)
                outcome = "ok" if code == 0 else ("bug" if code == 70 else "our-error")
            except _Timeout:
                outcome = "hang"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                sys.stderr, sys.stdout = stderr, stdout
            print(json.dumps({"index": index, "outcome": outcome}), flush=True)


def replay(seed: int, index: int) -> int:
    """Rebuild one mutant as ./mutant.onnx and compile it (a bug's traceback goes to a file)."""
    from snnc.cli import main

    source = SEEDS[index % len(SEEDS)]
    path = Path("mutant.onnx")
    path.write_bytes(mutate(source.read_bytes(), np.random.default_rng([seed, index])))
    return main(["compile", str(path), "--calib", str(CALIB[source.name]), "-o",
                 str(Path(tempfile.gettempdir()) / "mutant.snn"), "--timesteps", "4",
                 "--preset", "rate-p99.99"])


def fuzz(mutants: int, seed: int, limit: float, chunk: int = 100) -> Counter:
    counts: Counter = Counter()
    index = 0
    while index < mutants:
        n = min(chunk, mutants - index)
        proc = subprocess.run([sys.executable, __file__, "--worker", str(seed), str(index),
                               str(n), str(limit)], capture_output=True, text=True, check=False)
        done = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        for row in done:
            counts[row["outcome"]] += 1
            if row["outcome"] not in ("ok", "our-error"):
                print(f"{row['outcome']} at mutant {row['index']} (seed {seed}); reproduce "
                      f"with --replay {row['index']} --seed {seed}", file=sys.stderr)
        index += len(done)
        if len(done) < n:  # the worker died on the next mutant
            counts["crash"] += 1
            print(f"crash at mutant {index}: {proc.stderr[-300:]}", file=sys.stderr)
            index += 1
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutants", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=float, default=20.0, help="seconds per mutant")
    p.add_argument("--replay", type=int, metavar="INDEX",
                   help="write mutant INDEX to ./mutant.onnx and compile it")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.replay is not None:
        return replay(args.seed, args.replay)
    if args.worker:
        s, start, count, limit = args.worker
        worker(int(s), int(start), int(count), float(limit))
        return 0
    t0 = time.perf_counter()
    counts = fuzz(args.mutants, args.seed, args.limit)
    findings = counts["bug"] + counts["crash"] + counts["hang"]
    print(f"mutants tried: {sum(counts.values())}  compiled: {counts['ok']}  "
          f"our errors: {counts['our-error']}  anything else: {findings} "
          f"(bugs {counts['bug']}, crashes {counts['crash']}, hangs {counts['hang']})  "
          f"in {time.perf_counter() - t0:.0f} s")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
