"""Soft voting, weight fitting, the Youden point and bootstrap intervals, against hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

from dernet.ensemble.voting import PAPER_WEIGHTS, combine, fit_weights, simplex_grid
from dernet.metrics import binary_metrics, bootstrap_intervals, youden_threshold


def test_weighted_soft_voting_and_logit_average() -> None:
    probs = np.array([[0.9, 0.5, 0.1], [0.2, 0.4, 0.6]])
    np.testing.assert_allclose(
        combine(probs, PAPER_WEIGHTS), [0.42 * 0.9 + 0.32 * 0.5 + 0.26 * 0.1, 0.42 * 0.2 + 0.32 * 0.4 + 0.26 * 0.6]
    )
    np.testing.assert_allclose(combine(probs, [2, 0, 0]), probs[:, 0])  # weights are normalized
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    expected = 1 / (1 + np.exp(-(logit(probs) @ np.array([0.5, 0.25, 0.25]))))
    np.testing.assert_allclose(combine(probs, [0.5, 0.25, 0.25], mode="logit"), expected)
    with pytest.raises(ValueError, match="weights"):
        combine(probs, [0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        combine(probs, [1, -1, 1])


def test_simplex_grid_covers_the_simplex() -> None:
    grid = simplex_grid(3, 0.1)
    assert len(grid) == 66 and np.allclose(grid.sum(axis=1), 1) and (grid >= 0).all()


def test_weight_fitting_prefers_the_informative_member() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    informative = np.clip(0.5 + 0.35 * (labels - 0.5) * 2 + rng.normal(0, 0.2, 400), 0, 1)
    noise_a, noise_b = rng.random(400), rng.random(400)
    weights, auroc = fit_weights(np.stack([noise_a, informative, noise_b], axis=1), labels, step=0.05)
    assert weights[1] == weights.max() and weights[1] >= 0.8
    assert auroc == pytest.approx(roc_auc_score(labels, combine(np.stack([noise_a, informative, noise_b], 1), weights)))
    assert auroc > roc_auc_score(labels, combine(np.stack([noise_a, informative, noise_b], 1), PAPER_WEIGHTS))


def test_youden_threshold_on_a_hand_made_roc() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    # thresholds 0.7: sens 3/4, spec 4/4 -> J = 0.75 (best); 0.4: sens 1, spec 3/4 -> J = 0.75 too; sklearn
    # orders thresholds high to low and argmax takes the first, i.e. the stricter 0.7.
    assert youden_threshold(labels, scores) == pytest.approx(0.7)
    labels2 = np.array([0, 0, 1, 1])
    assert youden_threshold(labels2, np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(0.8)


def test_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    labels, probs = rng.integers(0, 2, 200), rng.random(200)
    metrics = binary_metrics(labels, probs, 0.4)
    decisions = probs >= 0.4
    assert metrics.auroc == roc_auc_score(labels, probs)
    assert metrics.f1 == f1_score(labels, decisions)
    assert metrics.sensitivity == recall_score(labels, decisions)
    assert metrics.specificity == recall_score(1 - labels, ~decisions)
    assert metrics.accuracy == accuracy_score(labels, decisions)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(2)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        return labels, np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.25, n), 0, 1)

    small, large = sample(60), sample(1200)
    widths = []
    for labels, probs in (small, large):
        point = binary_metrics(labels, probs, 0.5)
        ci = bootstrap_intervals(labels, probs, 0.5, resamples=300, seed=0)
        for name, (low, high) in ci.items():
            assert low <= getattr(point, name) <= high, name
        widths.append(ci["auroc"][1] - ci["auroc"][0])
    assert widths[1] < widths[0] / 2
