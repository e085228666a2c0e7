"""EmaStdFilter and group_stds against thresholds worked out by hand, step by step (docs/rlpr.md#std-filter)."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch

from rlpr.training.filter import EmaStdFilter, group_stds

NAN = math.nan

# E = 2, S = 4, rho = 0.9, beta = 0.5. Each step lists its generation rounds of candidate group stds.
ROUNDS = {
    1: [[1.0, 3.0]],  # before E: not recorded
    2: [[0.125, 0.375], [NAN, 0.25]],  # m2 = (0.125 + 0.375 + 0.25) / 3 = 0.25 (NaN ignored, two rounds)
    3: [[0.5, 1.0]],  # m3 = 0.75
    4: [[1.0, 2.0]],  # m4 = 1.5
    5: [[NAN]],  # no finite std: ema unchanged at step 6
    6: [[0.1]],  # m6 = 0.1
    7: [[0.3]],
}
# By hand: steps 1-3: theta 0. Step 4: ema = (0.25 + 0.75) / 2 = 0.5, theta = 0.25.
# Step 5: ema = 0.9 * 0.5 + 0.1 * 1.5 = 0.6, theta = 0.3. Step 6: ema 0.6, theta 0.3.
# Step 7: ema = 0.9 * 0.6 + 0.1 * 0.1 = 0.55, theta = 0.275.
EXPECTED_EMA = {1: None, 2: None, 3: None, 4: 0.5, 5: 0.6, 6: 0.6, 7: 0.55}
EXPECTED_THETA = {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.25, 5: 0.3, 6: 0.3, 7: 0.275}


def make_filter(**kw) -> EmaStdFilter:
    return EmaStdFilter(beta=kw.pop("beta", 0.5), ema_start_step=2, start_step=4, momentum=0.9, **kw)


def run_steps(f: EmaStdFilter, steps) -> dict[int, float]:
    thetas = {}
    for step in steps:
        thetas[step] = f.begin_step(step)
        for stds in ROUNDS[step]:
            f.observe(stds)
    return thetas


def test_thresholds_follow_the_hand_computed_schedule():
    f = make_filter()
    for step in range(1, 8):
        theta = f.begin_step(step)
        assert theta == pytest.approx(EXPECTED_THETA[step], abs=1e-15), step
        assert f.threshold() == theta
        if EXPECTED_EMA[step] is None:
            assert f.ema is None
        else:
            assert f.ema == pytest.approx(EXPECTED_EMA[step], abs=1e-15)
        assert f.active == (step >= 4)
        for stds in ROUNDS[step]:
            f.observe(stds)


def test_step_mean_counts_all_rounds_and_ignores_nan():
    f = make_filter()
    f.begin_step(2)
    assert f.step_mean_std is None
    f.observe([0.125, 0.375])
    assert f.step_mean_std == 0.25
    f.observe([NAN, math.inf, 0.25])
    assert f.step_mean_std == 0.25


def test_keep_before_start_step_keeps_everything_even_nan():
    f = make_filter()
    f.begin_step(3)
    assert f.keep([0.0, NAN, 5.0]) == [True, True, True]


def test_keep_at_start_step_uses_theta_inclusively_and_drops_non_finite():
    f = make_filter()
    run_steps(f, [1, 2, 3])
    assert f.begin_step(4) == 0.25
    assert f.keep([0.24, 0.25, 0.5, NAN, math.inf]) == [False, True, True, False, False]


def test_mean_enters_the_ema_from_all_candidates_kept_and_dropped():
    # beta 1.5: theta at step 4 = 1.5 * 0.5 = 0.75, so the 0.5 group is dropped, yet m4 = (0.5 + 2.5) / 2 = 1.5
    # includes it: ema at step 5 = 0.9 * 0.5 + 0.1 * 1.5 = 0.6, theta = 1.5 * 0.6.
    f = make_filter(beta=1.5)
    run_steps(f, [1, 2, 3])
    assert f.begin_step(4) == 0.75
    stds = [0.5, 2.5]
    assert f.keep(stds) == [False, True]
    f.observe(stds)
    assert f.begin_step(5) == pytest.approx(1.5 * 0.6, abs=1e-15)


def test_beta_per_source_multiplies_the_group_std_not_beta():
    f = make_filter(beta_per_source={"math": 2.0})
    run_steps(f, [1, 2, 3])
    assert f.begin_step(4) == 0.25  # ema 0.5, theta = 0.5 * 0.5 for every source
    assert (f.source_factor("math"), f.source_factor("web"), f.source_factor(None)) == (2.0, 1.0, 1.0)
    # math keeps iff 2 * std >= 0.25; web iff std >= 0.25
    assert f.keep([0.125, 0.125, 0.25, 0.1], ["math", "web", "web", "math"]) == [True, False, True, False]


def test_steps_without_any_finite_std_before_start_leave_no_ema_then_start_from_first_mean():
    f = EmaStdFilter(beta=0.5, ema_start_step=1, start_step=2, momentum=0.9)
    f.begin_step(1)
    f.observe([NAN])
    assert f.begin_step(2) == 0.0
    assert f.ema is None
    assert f.keep([NAN, 0.0]) == [False, True]
    f.observe([0.5, 1.5])
    assert f.begin_step(3) == 0.5  # ema = m2 = 1.0
    assert f.ema == 1.0


@pytest.mark.parametrize("restart_after", [1, 3, 4, 5, 6])
def test_restart_reproduces_the_uninterrupted_theta_sequence(restart_after):
    reference = run_steps(make_filter(), range(1, 8))

    first = make_filter()
    thetas = run_steps(first, range(1, restart_after + 1))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = json.loads(json.dumps(torch.load(buffer, weights_only=True)))  # survives both torch.save and JSON

    resumed = make_filter()
    resumed.load_state_dict(state)
    assert resumed.step == restart_after
    thetas.update(run_steps(resumed, range(restart_after + 1, 8)))
    assert thetas == reference
    assert resumed.ema == pytest.approx(0.55, abs=1e-15)


def test_group_stds_unbiased_per_group_in_first_appearance_order():
    # a: 1, 3, 5 -> mean 3, squares 4 + 0 + 4 = 8, / (3 - 1) = 4, std 2. b: 0.5, 0.5 -> 0. c: one response -> 1.0
    # (the official convention).
    stds = group_stds([1.0, 0.5, 3.0, 0.5, 7.0, 5.0], ["a", "b", "a", "b", "c", "a"])
    assert list(stds) == ["a", "b", "c"]
    assert stds["a"] == 2.0
    assert stds["b"] == 0.0
    assert stds["c"] == 1.0


def test_group_stds_accepts_tensors():
    stds = group_stds(torch.tensor([0.0, 1.0]), torch.tensor([7, 7]).tolist())
    assert stds[7] == pytest.approx(math.sqrt(0.5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta": -0.1}, "beta"),
        ({"beta": NAN}, "beta"),
        ({"beta": 0.5, "momentum": 1.0}, "momentum"),
        ({"beta": 0.5, "ema_start_step": 11, "start_step": 11}, "ema_start_step"),
        ({"beta": 0.5, "start_step": 2.5}, "integers"),
        ({"beta": 0.5, "beta_per_source": {"math": -1}}, r"beta_per_source\['math'\]"),
    ],
)
def test_bad_hyper_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EmaStdFilter(**kwargs)


def test_misuse_is_reported():
    f = make_filter()
    with pytest.raises(RuntimeError, match="before begin_step"):
        f.observe([1.0])
    with pytest.raises(RuntimeError, match="before begin_step"):
        f.keep([1.0])
    f.begin_step(3)
    with pytest.raises(ValueError, match="steps must increase"):
        f.begin_step(3)
    with pytest.raises(ValueError, match="negative"):
        f.observe([-0.5])
    with pytest.raises(ValueError, match="data_sources has 1"):
        f.keep([0.1, 0.2], ["math"])
    with pytest.raises(KeyError, match="ema"):
        f.load_state_dict({"step": 3})


def test_group_stds_errors_name_the_input():
    with pytest.raises(ValueError, match="group_ids has 1"):
        group_stds([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match=r"rewards\[1\] \(group 'a'\)"):
        group_stds([1.0, NAN], ["a", "a"])
