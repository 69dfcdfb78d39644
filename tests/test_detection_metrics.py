"""AP@0.5 through pycocotools on crafted predictions."""

from __future__ import annotations

import numpy as np
import pytest

from dernet.metrics import DetectionSample, average_precision_50

NAMES = ["a", "b"]


def sample(image_id: str, gt: list, dets: list = ()) -> DetectionSample:
    gt_boxes = np.array([g[1] for g in gt], float).reshape(-1, 4)
    det = list(dets)
    return DetectionSample(
        image_id,
        1000,
        800,
        gt_boxes,
        np.array([g[0] for g in gt], int),
        np.array([d[1] for d in det], float).reshape(-1, 4),
        np.array([d[2] for d in det], float),
        np.array([d[0] for d in det], int),
    )


def test_perfect_boxes_give_ap_1() -> None:
    samples = [
        sample(
            "1",
            [(0, [10, 10, 110, 90]), (1, [300, 300, 400, 420])],
            [(0, [10, 10, 110, 90], 0.9), (1, [300, 300, 400, 420], 0.8)],
        ),
        sample("2", []),
    ]
    result = average_precision_50(samples, NAMES)
    assert result["ap50"] == pytest.approx({"a": 1.0, "b": 1.0}) and result["map50"] == pytest.approx(1.0)


def test_boxes_below_iou_half_give_ap_0_and_classes_without_truth_are_left_out() -> None:
    # IoU of [0,0,100,100] and [60,0,160,100] is 40/160 = 0.25
    samples = [sample("1", [(0, [0, 0, 100, 100])], [(0, [60, 0, 160, 100], 0.9)])]
    result = average_precision_50(samples, NAMES)
    assert result["ap50"] == {"a": 0.0, "b": None} and result["map50"] == 0.0


def test_hand_computed_precision_recall_case() -> None:
    """Two truths, three detections ranked TP (0.9), FP on a normal image (0.8), TP (0.7).

    Precision/recall: (1, 0.5), (0.5, 0.5), (2/3, 1). COCO's interpolated precision is 1 for recall <= 0.5
    (51 of the 101 points) and 2/3 above (50 points): AP = (51 + 50 * 2/3) / 101.
    """
    samples = [
        sample("1", [(0, [0, 0, 100, 100])], [(0, [0, 0, 100, 100], 0.9)]),
        sample("normal", [], [(0, [0, 0, 50, 50], 0.8)]),
        sample("3", [(0, [200, 200, 300, 300])], [(0, [205, 200, 300, 300], 0.7)]),
    ]
    result = average_precision_50(samples, NAMES)
    assert result["ap50"]["a"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert result["precision"]["a"][0] == pytest.approx(1.0) and result["precision"]["a"][-1] == pytest.approx(2 / 3)


def test_no_detections_at_all_give_ap_0() -> None:
    result = average_precision_50([sample("1", [(1, [0, 0, 10, 10])])], NAMES)
    assert result["ap50"] == {"a": None, "b": 0.0}
