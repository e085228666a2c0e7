"""f_seq, debias and R against hand-computed values (docs/rlpr.md#probability-reward, #debias, #final-reward)."""

import math

import pytest
import torch

from rlpr.reward import combine, debias, final_rewards, sequence_score, sequence_scores


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("mean_prob", (0.01 + 0.7 + 0.9) / 3),
        ("geo_mean_prob", (0.01 * 0.7 * 0.9) ** (1 / 3)),
        ("seq_likelihood", 0.01 * 0.7 * 0.9),
        ("mean_logprob", (math.log(0.01) + math.log(0.7) + math.log(0.9)) / 3),
    ],
)
def test_sequence_score_methods(method, expected):
    assert sequence_score([0.01, 0.7, 0.9], method) == pytest.approx(expected, rel=1e-12)


def test_mean_is_robust_to_one_low_token():
    # The paper's argument: the product is dominated by the single low-probability token, the mean is not.
    low, mid = [0.01, 0.7, 0.9], [0.05, 0.7, 0.9]
    assert sequence_score(mid, "seq_likelihood") / sequence_score(low, "seq_likelihood") == pytest.approx(5.0)
    assert sequence_score(mid) / sequence_score(low) == pytest.approx(1.65 / 1.61)


def test_empty_and_edge_inputs():
    for method in ("mean_prob", "geo_mean_prob", "seq_likelihood", "mean_logprob"):
        assert sequence_score([], method) == 0.0
    assert sequence_score([0.0, 1.0], "geo_mean_prob") == pytest.approx(0.0, abs=1e-15)  # log 0 is floored
    assert math.isfinite(sequence_score([0.0], "mean_logprob"))
    assert sequence_score(torch.tensor([0.5, 0.25])) == pytest.approx(0.375)


@pytest.mark.parametrize("bad", [[float("nan")], [1.5], [-0.1]])
def test_sequence_score_rejects_bad_probabilities(bad):
    with pytest.raises(ValueError, match="token_probs"):
        sequence_score(bad)


def test_sequence_score_rejects_unknown_method():
    with pytest.raises(ValueError, match="'mode'"):
        sequence_score([0.5], "mode")


def test_batched_scores_ignore_padding():
    log_probs = torch.tensor([[math.log(0.5), math.log(0.25), float("nan")], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = sequence_scores(log_probs, mask, "mean_prob")
    assert out.tolist() == pytest.approx([0.375, 0.0])
    with pytest.raises(ValueError, match="shape"):
        sequence_scores(log_probs, mask[:, :2])


@pytest.mark.parametrize(
    ("r", "r_prime", "shaping", "expected"),
    [
        (0.6, 0.2, "clip", 0.4),
        (0.2, 0.6, "clip", 0.0),
        (0.2, 0.6, "identity", -0.4),
        (0.2, 0.6, "none", 0.2),
        (1.0, 0.0, "clip", 1.0),
    ],
)
def test_debias(r, r_prime, shaping, expected):
    assert debias(r, r_prime, shaping) == pytest.approx(expected)


def test_debias_rejects_bad_input():
    with pytest.raises(ValueError, match="shaping"):
        debias(0.5, 0.1, "threshold_0")
    with pytest.raises(ValueError, match="r_prime"):
        debias(0.5, float("nan"))


def test_combine():
    assert combine(0.4, 1.0, 0.0) == pytest.approx(0.9 * 0.4 + 0.1)
    assert combine(0.4, 0.0, -1.0) == pytest.approx(0.36 - 1.0)
    assert combine(0.4, 1.0, 0.0, format_coef=0.0) == pytest.approx(0.4)
    for kwargs, name in [
        ({"format_coef": 1.5}, "format_coef"),
        ({"repetition": 1.0}, "repetition"),
        ({"format_score": 2.0}, "format_score"),
        ({"r_hat": float("inf")}, "r_hat"),
    ]:
        args = {"r_hat": 0.4, "format_score": 1.0, "repetition": 0.0, **kwargs}
        with pytest.raises(ValueError, match=name):
            combine(**args)


def test_combine_applies_the_repetition_policy():
    # this project: P on every response; the reference implementation: P only where (1 - c)·r̂ + c·F is non-zero
    assert combine(0.0, 0.0, -1.0) == -1.0
    assert combine(0.0, 0.0, -1.0, repetition_on_all=False) == 0.0
    assert combine(0.5, 0.0, -1.0, repetition_on_all=False) == pytest.approx(0.45 - 1.0)


def test_final_rewards_is_debias_then_combine_per_response():
    r = torch.tensor([0.8, 0.3, 0.0, 0.6], dtype=torch.float64)
    rp = torch.tensor([0.5, 0.5, 0.2, 0.5], dtype=torch.float64)
    f = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    p = torch.tensor([0.0, 0.0, -1.0, -1.0], dtype=torch.float64)
    for shaping in ("clip", "identity", "none"):
        for on_all in (True, False):
            r_hat, reward = final_rewards(r, rp, f, p, shaping=shaping, format_coef=0.1, repetition_on_all=on_all)
            expected_hat = [debias(a, b, shaping) for a, b in zip(r.tolist(), rp.tolist())]
            assert r_hat.tolist() == expected_hat
            assert reward.tolist() == [
                combine(h, x, y, 0.1, on_all) for h, x, y in zip(expected_hat, f.tolist(), p.tolist())
            ]
    with pytest.raises(ValueError, match="same length"):
        final_rewards(r, rp[:2], f, p)
