"""REINFORCE: episode-start returns against a NumPy loop, the loss on hand-made
inputs, bad configs, probes, and (slow) CartPole. The contract every agent keeps is
tested in test_agent_contract.py."""

import dataclasses

import agents_common as common
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.agents import reinforce as rf

PROBE_CONFIG = rf.ReinforceConfig(num_envs=8, rollout_len=8, total_steps=8 * 8 * 300)
PROBE_HP = rf.ReinforceHParams(lr=3e-3, gamma=0.9)


def test_episode_start_returns_matches_numpy_loop():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(12, 3)).astype(np.float32)
    first = rng.random((12, 3)) < 0.3
    want = np.empty_like(g)
    for b in range(3):
        start = 0
        for t in range(12):
            if first[t, b]:
                start = t
            want[t, b] = g[start, b]
    got = jax.jit(rf.episode_start_returns)(jnp.asarray(g), jnp.asarray(first))
    np.testing.assert_array_equal(got, want)


def loss_grads(ret, baseline):
    hp, params = rf.ReinforceHParams(), common.TOY
    ret = jnp.asarray(ret, jnp.float32)
    batch = rf.Batch(jnp.zeros((2, 1)), jnp.array([1, 1]), ret, ret)
    return jax.grad(rf.reinforce_loss, has_aux=True)(
        params, common.toy_apply, batch, hp, baseline, False
    )


def test_baseline_equal_to_return_gives_zero_policy_gradient():
    # A = G - V = 0; value loss 0.5 (V - G)^2 is 0 too.
    grads, stats = loss_grads([1.0, 1.0], baseline=True)
    np.testing.assert_allclose(grads["logits"], 0.0)
    np.testing.assert_allclose(grads["value"], 0.0)
    # Without a baseline A = G = 1: d(-log softmax(l)_1)/dl = -[-0.5, 0.5]; V gets no gradient.
    grads, stats = loss_grads([1.0, 1.0], baseline=False)
    np.testing.assert_allclose(grads["logits"], [0.5, -0.5], rtol=1e-6)
    np.testing.assert_allclose(grads["value"], 0.0)


@pytest.mark.parametrize("ret", [3.0, -1.0])
def test_policy_gradient_step_follows_advantage_sign(ret):
    # Baseline V = 1: A = ret - 1 is +2 or -2.
    grads, stats = loss_grads([ret, ret], baseline=True)
    stepped = jax.tree.map(lambda p, g: p - 0.1 * g, common.TOY, grads)
    new_prob = jax.nn.softmax(stepped["logits"])[1]
    assert (new_prob - 0.5) * (ret - 1.0) > 0
    # The baseline moves towards the return: 0.5 * vf_coef * (1 - ret)^2.
    np.testing.assert_allclose(stats["value_loss"], 0.5 * (1.0 - ret) ** 2)
    assert (stepped["value"] - 1.0) * (ret - 1.0) > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_envs": 0}, "ReinforceConfig.num_envs=0 is not allowed"),
        ({"total_steps": 100}, "ReinforceConfig.total_steps=100 is less than one rollout"),
        ({"baseline": "yes"}, "ReinforceConfig.baseline='yes' is not allowed"),
        ({"activation": "sigmoid"}, "ReinforceConfig.activation='sigmoid' is not allowed"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rf.ReinforceConfig(**kwargs)


def test_bad_hparams_raise():
    with pytest.raises(ValueError, match=r"ReinforceHParams.gamma=1.5 is not allowed"):
        rf.ReinforceHParams(gamma=1.5).validate()


PROBE_RUNS = {
    # (probe, reward_to_go, baseline): values need the baseline; Probe-4/5 learn without one
    "p1": (1, True, True),
    "p3": (3, True, True),
    "p4": (4, True, False),
    "p5": (5, False, True),
}


@pytest.fixture(scope="module")
def probe_runs():
    """Train on probes with 2 vmapped seeds; one compile per run."""
    runs = {
        name: (index, dataclasses.replace(PROBE_CONFIG, reward_to_go=to_go, baseline=baseline))
        for name, (index, to_go, baseline) in PROBE_RUNS.items()
    }
    return common.train_probes(rf, runs, PROBE_HP)


def test_probe1_baseline_bootstraps_through_truncation(probe_runs):
    common.check_probe1_value(probe_runs["p1"], atol=1.0)


def test_probe3_baseline_discounts(probe_runs):
    common.check_probe3_value(probe_runs["p3"], atol=0.15)


def test_probe4_and_5_learn_the_best_action(probe_runs):
    common.check_probe4_and_5_actions(probe_runs["p4"], probe_runs["p5"], min_prob=0.9)


def test_metrics_without_a_baseline_have_the_same_keys(probe_runs):
    # Probe-4 trains without a baseline; the critic's loss is logged all the same.
    metrics = probe_runs["p4"].metrics
    assert {"episode_return_sum", "episodes", "policy_loss", "value_loss"} <= set(metrics)


@pytest.mark.slow
def test_cartpole_500k_steps_with_baseline():
    common.check_cartpole_final_return(rf, rf.ReinforceConfig(), rf.ReinforceHParams(), minimum=300)
