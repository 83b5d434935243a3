"""The joint (S_T, M, MET) histogram of the exclusive event classes, filled in the processor's class pass."""

from __future__ import annotations

import numpy as np
import pytest
from cms_anomaly.processors.histograms import CLASS_JOINT_EDGES


def test_class_joint_holds_each_exclusive_class_once(real_nanoaod_files):
    """Per exclusive class the joint histogram's sums of weights and of squared weights (overflow included)
    equal the class's S_T histogram's; inclusive classes are not in it; its axes are the stated edges."""
    from cms_anomaly.processors import runner
    from cms_anomaly.processors.processor import AnomalyProcessor

    fs = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"is_data": False, "era": "2016"}}}
    with runner.make_executor("iterative") as ex:
        res = runner.run_processor(fs, AnomalyProcessor(selection="event_classes", lumi_pb=10.0), executor=ex)["dy"]
    joint, st = res["hists"]["class_joint"], res["hists"]["class_st"]
    exclusive = {c for c in res["class_counts"] if "+" not in c}
    assert exclusive
    assert set(joint.axes["event_class"]) == exclusive
    for ax, (name, edges) in zip(joint.axes[2:], CLASS_JOINT_EDGES.items(), strict=True):
        assert ax.name == name
        np.testing.assert_array_equal(ax.edges, edges)
    for c in exclusive:
        cell = joint[{"dataset": "dy", "event_class": c}]
        total = st[{"dataset": "dy", "event_class": c}].sum(flow=True)
        assert cell.sum(flow=True).value == pytest.approx(total.value)
        assert cell.sum(flow=True).variance == pytest.approx(total.variance)
