"""tree-thresholds: the ReLUs of a lowered max pool fire at their input's threshold, so that a
rate-coded tree (IF or stock LIF) moves by whole thresholds and never overshoots."""

from __future__ import annotations

import numpy as np
import pytest
from test_lower_maxpool import _pool_attrs, _pool_net

from snnc.compiler.errors import PassError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.passes.lower_maxpool import lower_maxpool
from snnc.compiler.passes.manager import (
    CONVERT,
    FOLD_BATCHNORM,
    LOWER_MAXPOOL,
    NORMALIZE_THRESHOLDS,
    PassOptions,
    run_pipeline,
)
from snnc.compiler.passes.normalize_thresholds import NormSpec, normalize_thresholds
from snnc.compiler.passes.tree_thresholds import MARGIN, NAME, tree_thresholds

CALIB = np.random.default_rng(3).normal(size=(32, 3, 9, 9)).astype(np.float32)


def _thresholded(per_channel: bool, kernel: int = 2) -> Graph:
    graph = lower_maxpool(_pool_net(_pool_attrs(kernel, kernel)))
    return normalize_thresholds(graph, CALIB, NormSpec("percentile", 99.0, per_channel))


def _tree_relus(graph: Graph) -> list:
    return [n for n in graph.nodes if n.op == "relu" and "lowered_from" in n.meta]


@pytest.mark.parametrize("kernel", [2, 3])
def test_tree_relus_take_the_pools_input_threshold(kernel: int) -> None:
    before = _thresholded(False, kernel)
    source = float(before.node("r0").params["theta"])
    # data-based: the percentiles of the tree's own values, not the source's threshold
    assert all(float(n.params["theta"]) != source for n in _tree_relus(before))
    after = tree_thresholds(before)
    relus = _tree_relus(after)
    assert len(relus) == (2 if kernel == 2 else 4)
    for node in relus:  # just below the threshold of the activation its grouped conv reads
        feeding = after.node(after.node(node.inputs[0]).inputs[0])
        assert feeding.name == "r0" or feeding in relus
        assert float(node.params["theta"]) == np.float32(
            float(feeding.params["theta"]) * MARGIN)
        assert node.meta["theta_from"] == "tree input"
    assert float(relus[0].params["theta"]) == np.float32(source * MARGIN)
    untouched = [n.name for n in after.nodes if n.op == "relu" and n not in relus]
    assert untouched == ["r0"] and after.node("r0").params["theta"] == before.node(
        "r0").params["theta"]


def test_per_channel_thresholds_follow_each_channels_group() -> None:
    after = tree_thresholds(_thresholded(True))
    source = after.node("r0").params["theta"].reshape(-1)  # 3 channels
    assert len(np.unique(source)) == 3
    first = _tree_relus(after)[0]  # the first level reads r0's channels
    per_group = first.shape[0] // 3  # grouped convs: groups = the pool's channels
    assert first.params["theta"].shape == (first.shape[0], 1, 1)
    np.testing.assert_array_equal(first.params["theta"].reshape(-1),
                                  (np.repeat(source, per_group) * MARGIN).astype(np.float32))
    second = _tree_relus(after)[1]
    assert second.params["theta"].shape == (second.shape[0], 1, 1)
    assert len(np.unique(second.params["theta"])) == 3


def test_rate_coded_tree_moves_by_whole_thresholds() -> None:
    """Per step each tree neuron gets at most one threshold in (a pair's ReLU channels never
    spike in the same step), so reset to zero and reset by subtraction count the same."""
    options = PassOptions(calib=CALIB, norm=NormSpec("percentile", 99.0), neuron="lif")
    pipeline = (FOLD_BATCHNORM, LOWER_MAXPOOL, NORMALIZE_THRESHOLDS, NAME, CONVERT)
    from snnc.backends.numpy.simulator import simulate

    outs = {}
    for neuron in ("lif", "if"):
        g = run_pipeline(_pool_net(_pool_attrs(2, 2)), pipeline,
                         PassOptions(**{**options.__dict__, "neuron": neuron}))
        # drive the pool's input with the same spikes in both: replay r0's trains of the IF net
        outs[neuron] = g
    ref = simulate(outs["if"], CALIB[:8], [24], capture=("r0",))
    same = {k: simulate(g, CALIB[:8], [24], replay={"r0": ref.trains["r0"]})
            for k, g in outs.items()}
    np.testing.assert_allclose(same["lif"].outputs[0], same["if"].outputs[0], atol=1e-5)


def test_a_converted_graph_is_refused_by_name() -> None:
    options = PassOptions(calib=CALIB, norm=NormSpec("percentile", 99.0))
    converted = run_pipeline(_pool_net(_pool_attrs(2, 2)),
                             (LOWER_MAXPOOL, NORMALIZE_THRESHOLDS, CONVERT), options)
    with pytest.raises(PassError, match=NAME):
        tree_thresholds(converted)
