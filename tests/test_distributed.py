"""`snnc eval --workers N / --scheduler ADDRESS` (runtime/distributed.py): shards cut at the
single-process run's chunk boundaries, and a LocalCluster of 2 worker processes (loopback)
giving the same report, byte for byte apart from timings, as one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snnc.cli import main
from snnc.compiler.errors import UsageError
from snnc.runtime.distributed import plan_shards


def test_shards_hold_whole_chunks() -> None:
    assert plan_shards(540, 128, 4) == [slice(0, 256), slice(256, 540)]
    assert plan_shards(300, 128, 4) == [slice(0, 300)]  # two chunks: nothing to share
    shards = plan_shards(10_000, 100, 8)
    assert len(shards) == 8 and shards[0].start == 0 and shards[-1].stop == 10_000
    for a, b in zip(shards, shards[1:], strict=False):
        assert a.stop == b.start and a.stop % 100 == 0 and a.stop - a.start >= 200


def test_scheduler_and_workers_are_exclusive() -> None:
    from snnc.runtime.distributed import Cluster

    with pytest.raises(UsageError, match="one of --scheduler"):
        Cluster("tcp://127.0.0.1:1", 2)
    with pytest.raises(UsageError, match="positive"):
        Cluster(workers=0)


def _report(path: Path) -> dict:
    report = json.loads(path.read_text())
    report.pop("timing")
    return report


def test_local_cluster_gives_the_single_process_report(digits_model: Path, digits_calib: Path,
                                                       digits_test: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("distributed")
    args = ["eval", str(digits_model), "--data", str(digits_test), "--calib",
            str(digits_calib), "--timesteps", "1,8", "--preset", "rate-p99.99,if"]
    assert main([*args, "--json", str(tmp_path / "one.json")]) == 0
    assert main([*args, "--json", str(tmp_path / "two.json"), "--workers", "2"]) == 0
    one, two = _report(tmp_path / "one.json"), _report(tmp_path / "two.json")
    assert one == two
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert one["samples"] == 540 and len(one["methods"]) == 2
    capsys.readouterr()


def test_an_unreachable_scheduler_is_a_usage_error(digits_model: Path, digits_test: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("distributed")
    from snnc.runtime import distributed

    monkey = pytest.MonkeyPatch()
    monkey.setattr(distributed, "_CONNECT_TIMEOUT_S", 1)
    try:
        assert main(["eval", str(digits_model), "--data", str(digits_test), "--timesteps", "1",
                     "--preset", "rate-p99.99", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    finally:
        monkey.undo()
    assert "cannot reach a Dask scheduler" in capsys.readouterr().err


def test_held_out_32x32_model_sharded_four_ways(test_data: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A VGG on 32x32 inputs: 16-sample chunks, so 136 samples (of the held-out 540: each
    costs two simulations) make four shards, the last with the partial chunk."""
    pytest.importorskip("distributed")
    import numpy as np

    from snnc.evaluate import evaluate
    from snnc.runtime import distributed
    from snnc.runtime.distributed import Cluster

    held = test_data / "heldout"
    with np.load(held / "digits32_test.npz") as f:
        np.savez(tmp_path / "test.npz", x=f["x"][:136], y=f["y"][:136])
    args = (held / "vgg_qcfs_L4.onnx", tmp_path / "test.npz", [2, 4])
    one = evaluate(*args, presets=["qcfs"])
    planned: list[list[slice]] = []

    def spy(n: int, chunk: int, parts: int) -> list[slice]:
        planned.append(plan_shards(n, chunk, parts))
        return planned[-1]

    monkeypatch.setattr(distributed, "plan_shards", spy)
    with Cluster(workers=2) as cluster:
        two = evaluate(*args, presets=["qcfs"], runner=cluster)
    assert planned and all(len(shards) == 4 and shards[-1].stop - shards[-1].start > 32
                           for shards in planned)
    one.pop("timing"), two.pop("timing")
    assert one["samples"] == 136
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
