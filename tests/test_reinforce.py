"""REINFORCE: episode-start returns against a NumPy loop, the loss on hand-made
inputs, the train contract, probes, and (slow) CartPole."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl.agents import reinforce as rf
from jaxrl.distributions import Categorical

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


def toy_apply(params, obs):
    """A state-less 'network': logits and value are the parameters themselves."""
    shape = obs.shape[:1]
    return Categorical(jnp.broadcast_to(params["logits"], (*shape, 2))), jnp.broadcast_to(
        params["value"], shape
    )


TOY = {"logits": jnp.zeros(2), "value": jnp.array(1.0)}


def loss_grads(ret, baseline):
    hp, params = rf.ReinforceHParams(), TOY
    ret = jnp.asarray(ret, jnp.float32)
    batch = rf.Batch(jnp.zeros((2, 1)), jnp.array([1, 1]), ret, ret)
    return jax.grad(rf.reinforce_loss, has_aux=True)(params, toy_apply, batch, hp, baseline, False)


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
    stepped = jax.tree.map(lambda p, g: p - 0.1 * g, TOY, grads)
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
    out = {}
    for name, (index, to_go, baseline) in PROBE_RUNS.items():
        env, params = envs.make(f"Probe-{index}", max_episode_steps=8 if index == 1 else 100)
        config = rf.ReinforceConfig(
            **{**PROBE_CONFIG.__dict__, "reward_to_go": to_go, "baseline": baseline}
        )
        train = rf.make_train(config, env, params)
        keys = jax.random.split(jax.random.key(index), 2)
        state, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, PROBE_HP)
        out[name] = (env, params, state, metrics)
    return out


def values_and_probs(run, obs):
    env, params, state, _ = run
    network = rf.make_network(PROBE_CONFIG, env, params)
    dist, value = jax.vmap(network.apply, in_axes=(0, None))(state.params, obs)
    return np.asarray(value), np.asarray(dist.probs())


def test_probe1_baseline_bootstraps_through_truncation(probe_runs):
    # reward 1 forever, time limit 8: V = 1 / (1 - 0.9) = 10, not (1 - 0.9^8) / 0.1 = 5.7
    value, _ = values_and_probs(probe_runs["p1"], jnp.zeros((1, 1)))
    np.testing.assert_allclose(value[:, 0], 10.0, atol=1.0)


def test_probe3_baseline_discounts(probe_runs):
    value, _ = values_and_probs(probe_runs["p3"], jnp.array([[0.0], [1.0]]))
    np.testing.assert_allclose(value, [[0.9, 1.0]] * 2, atol=0.15)


def test_probe4_and_5_learn_the_best_action(probe_runs):
    _, probs = values_and_probs(probe_runs["p4"], jnp.zeros((1, 1)))
    assert (probs[:, 0, 1] > 0.9).all()
    _, probs = values_and_probs(probe_runs["p5"], jnp.array([[-1.0], [1.0]]))
    assert (probs[:, 0, 0] > 0.9).all() and (probs[:, 1, 1] > 0.9).all()


def test_metrics_have_update_axis(probe_runs):
    metrics = probe_runs["p4"][3]
    assert {"episode_return_sum", "episodes", "policy_loss", "value_loss"} <= set(metrics)
    for value in metrics.values():
        assert value.shape == (2, PROBE_CONFIG.num_updates)


@pytest.fixture(scope="module")
def small_train():
    env, params = envs.make("gymnax:CartPole-v1")
    config = rf.ReinforceConfig(num_envs=4, rollout_len=8, total_steps=4 * 8 * 3)
    return rf.make_train(config, env, params)


def test_vmap_over_seeds_equals_single_runs_and_compiles_once(small_train):
    keys = jax.random.split(jax.random.key(0), 2)
    hp = rf.ReinforceHParams()
    batched = jax.jit(jax.vmap(small_train, in_axes=(0, None)))(keys, hp)
    single = jax.jit(chex.assert_max_traces(small_train, n=1))
    for i in range(2):
        state, metrics = single(keys[i], hp)
        expected = jax.tree.map(lambda x, i=i: x[i], (batched[0].params, batched[1]))
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)  # noqa: E731
        jax.tree.map(close, expected, (state.params, metrics))
    single(keys[0], hp._replace(gamma=0.9))  # new values, same shapes: no retrace


def test_continuous_actions_run():
    env, params = envs.make("gymnax:Pendulum-v1")
    config = rf.ReinforceConfig(num_envs=2, rollout_len=8, total_steps=32, reward_to_go=False)
    state, metrics = jax.jit(rf.make_train(config, env, params))(
        jax.random.key(0), rf.ReinforceHParams()
    )
    assert np.isfinite(metrics["policy_loss"]).all()
    action = rf.make_policy(config, env, params, state)(jax.random.key(1), jnp.zeros((3, 3)))
    assert action.shape == (3, 1)


def final_return(metrics) -> float:
    """Mean over seeds of (episode return sum / episodes) over the last 5% of updates."""
    tail = max(1, metrics["episodes"].shape[1] // 20)
    sums = metrics["episode_return_sum"][:, -tail:].sum(1)
    return float(np.mean(sums / np.maximum(metrics["episodes"][:, -tail:].sum(1), 1)))


@pytest.mark.slow
def test_cartpole_500k_steps_with_baseline():
    env, params = envs.make("gymnax:CartPole-v1")
    train = rf.make_train(rf.ReinforceConfig(), env, params)
    keys = jax.random.split(jax.random.key(0), 8)
    _, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, rf.ReinforceHParams())
    assert final_return(metrics) >= 300
