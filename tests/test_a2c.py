"""A2C: the loss on hand-made inputs, the train contract, probes, and (slow) CartPole."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl.agents import a2c
from jaxrl.distributions import Categorical

PROBE_CONFIG = a2c.A2CConfig(num_envs=8, rollout_len=8, total_steps=8 * 8 * 300)
PROBE_HP = a2c.A2CHParams(lr=3e-3, gamma=0.9, ent_coef=0.0)


def toy_apply(params, obs):
    """A state-less 'network': logits and value are the parameters themselves."""
    shape = obs.shape[:1]
    return Categorical(jnp.broadcast_to(params["logits"], (*shape, 2))), jnp.broadcast_to(
        params["value"], shape
    )


TOY = {"logits": jnp.zeros(2), "value": jnp.array(1.0)}


def toy_batch(advantage, target):
    adv = jnp.asarray(advantage, jnp.float32)
    return a2c.Batch(jnp.zeros((2, 1)), jnp.array([1, 1]), adv, jnp.asarray(target, jnp.float32))


def test_zero_advantage_gives_zero_policy_gradient():
    hp = a2c.A2CHParams(ent_coef=0.0, vf_coef=0.5)
    grads, stats = jax.grad(a2c.a2c_loss, has_aux=True)(
        TOY, toy_apply, toy_batch([0.0, 0.0], [3.0, 3.0]), hp
    )
    np.testing.assert_allclose(grads["logits"], 0.0)
    # value loss: 0.5 * (1 - 3)^2 = 2; its gradient vf_coef * (V - target) = -1
    np.testing.assert_allclose(stats["value_loss"], 2.0)
    np.testing.assert_allclose(grads["value"], -1.0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_policy_gradient_step_follows_advantage_sign(sign):
    hp = a2c.A2CHParams(ent_coef=0.0, vf_coef=0.0)
    batch = toy_batch([sign, sign], [1.0, 1.0])
    grads, _ = jax.grad(a2c.a2c_loss, has_aux=True)(TOY, toy_apply, batch, hp)
    # d(-A log softmax(l)_1)/dl = -A (onehot(1) - [0.5, 0.5]) = -A [-0.5, 0.5]
    np.testing.assert_allclose(grads["logits"], [0.5 * sign, -0.5 * sign], rtol=1e-6)
    stepped = jax.tree.map(lambda p, g: p - 0.1 * g, TOY, grads)
    new_prob = jax.nn.softmax(stepped["logits"])[1]
    assert (new_prob - 0.5) * sign > 0


def test_entropy_bonus_pushes_towards_uniform():
    params = {"logits": jnp.array([0.0, 2.0]), "value": jnp.array(1.0)}
    hp = a2c.A2CHParams(ent_coef=1.0, vf_coef=0.0)
    grads, _ = jax.grad(a2c.a2c_loss, has_aux=True)(
        params, toy_apply, toy_batch([0.0, 0.0], [1.0, 1.0]), hp
    )
    assert grads["logits"][1] > 0 > grads["logits"][0]  # descent lowers the larger logit


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_envs": 0}, "A2CConfig.num_envs=0 is not allowed"),
        ({"rollout_len": -1}, "A2CConfig.rollout_len=-1 is not allowed"),
        ({"total_steps": 100}, "A2CConfig.total_steps=100 is less than one rollout"),
        ({"advantage": "td"}, "A2CConfig.advantage='td' is not allowed"),
        ({"activation": "sigmoid"}, "A2CConfig.activation='sigmoid' is not allowed"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        a2c.A2CConfig(**kwargs)


def test_bad_hparams_raise():
    with pytest.raises(ValueError, match=r"A2CHParams.gamma=1.5 is not allowed"):
        a2c.A2CHParams(gamma=1.5).validate()
    with pytest.raises(ValueError, match=r"A2CHParams.lr=0"):
        a2c.A2CHParams(lr=0.0).validate()


@pytest.fixture(scope="module")
def probe_runs():
    """Train on every probe with 2 vmapped seeds; one compile per probe."""
    out = {}
    for index in range(1, 6):
        limit = 8 if index == 1 else 100
        env, params = envs.make(f"Probe-{index}", max_episode_steps=limit)
        # n-step returns on Probe-1: the rollout end and the time limit both bootstrap.
        config = PROBE_CONFIG
        if index == 1:
            config = a2c.A2CConfig(**{**PROBE_CONFIG.__dict__, "advantage": "nstep"})
        train = a2c.make_train(config, env, params)
        keys = jax.random.split(jax.random.key(index), 2)
        state, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, PROBE_HP)
        out[index] = (env, params, state, metrics)
    return out


def values_and_probs(run, obs):
    env, params, state, _ = run
    network = a2c.make_network(PROBE_CONFIG, env, params)
    dist, value = jax.vmap(network.apply, in_axes=(0, None))(state.params, obs)
    return np.asarray(value), np.asarray(dist.probs())


def test_probe1_value_bootstraps_through_truncation(probe_runs):
    # reward 1 forever, time limit 8: V = 1 / (1 - 0.9) = 10, not (1 - 0.9^8) / 0.1 = 5.7
    value, _ = values_and_probs(probe_runs[1], jnp.zeros((1, 1)))
    np.testing.assert_allclose(value[:, 0], 10.0, atol=1.0)


def test_probe2_value_uses_observation(probe_runs):
    value, _ = values_and_probs(probe_runs[2], jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(value, [[-1.0, 1.0]] * 2, atol=0.2)


def test_probe3_value_discounts(probe_runs):
    value, _ = values_and_probs(probe_runs[3], jnp.array([[0.0], [1.0]]))
    np.testing.assert_allclose(value, [[0.9, 1.0]] * 2, atol=0.15)


def test_probe4_and_5_learn_the_best_action(probe_runs):
    _, probs = values_and_probs(probe_runs[4], jnp.zeros((1, 1)))
    assert (probs[:, 0, 1] > 0.9).all()
    _, probs = values_and_probs(probe_runs[5], jnp.array([[-1.0], [1.0]]))
    assert (probs[:, 0, 0] > 0.9).all() and (probs[:, 1, 1] > 0.9).all()


def test_metrics_have_update_axis(probe_runs):
    metrics = probe_runs[4][3]
    assert {"episode_return_sum", "episodes", "policy_loss", "value_loss"} <= set(metrics)
    for value in metrics.values():
        assert value.shape == (2, PROBE_CONFIG.num_updates)
    assert (metrics["episodes"] == PROBE_CONFIG.batch_size).all()  # one-step episodes


@pytest.fixture(scope="module")
def small_train():
    env, params = envs.make("gymnax:CartPole-v1")
    config = a2c.A2CConfig(num_envs=4, rollout_len=8, total_steps=4 * 8 * 3)
    return a2c.make_train(config, env, params)


def test_vmap_over_seeds_equals_single_runs_and_compiles_once(small_train):
    keys = jax.random.split(jax.random.key(0), 2)
    hp = a2c.A2CHParams()
    batched = jax.jit(jax.vmap(small_train, in_axes=(0, None)))(keys, hp)
    single = jax.jit(chex.assert_max_traces(small_train, n=1))
    for i in range(2):
        state, metrics = single(keys[i], hp)
        expected = jax.tree.map(lambda x, i=i: x[i], (batched[0].params, batched[1]))
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)  # noqa: E731
        jax.tree.map(close, expected, (state.params, metrics))
    single(keys[0], hp._replace(lr=1e-3))  # new values, same shapes: no retrace


def test_hyperparameter_sweep_is_one_vmap(small_train):
    hps = jax.tree.map(lambda x: jnp.full(2, x), a2c.A2CHParams())
    hps = hps._replace(lr=jnp.array([1e-4, 1e-3]), gae_lambda=jnp.array([0.9, 1.0]))
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = jax.jit(jax.vmap(small_train))(keys, hps)
    assert metrics["policy_loss"].shape == (2, 3)


def test_continuous_actions_run():
    env, params = envs.make("gymnax:Pendulum-v1")
    config = a2c.A2CConfig(num_envs=2, rollout_len=8, total_steps=32, advantage="nstep")
    state, metrics = jax.jit(a2c.make_train(config, env, params))(
        jax.random.key(0), a2c.A2CHParams()
    )
    assert np.isfinite(metrics["value_loss"]).all()
    action = a2c.make_policy(config, env, params, state)(jax.random.key(1), jnp.zeros((3, 3)))
    assert action.shape == (3, 1)


def final_return(metrics) -> float:
    """Mean over seeds of (episode return sum / episodes) over the last 5% of updates."""
    tail = max(1, metrics["episodes"].shape[1] // 20)
    sums = metrics["episode_return_sum"][:, -tail:].sum(1)
    return float(np.mean(sums / np.maximum(metrics["episodes"][:, -tail:].sum(1), 1)))


@pytest.mark.slow
def test_cartpole_500k_steps():
    env, params = envs.make("gymnax:CartPole-v1")
    train = a2c.make_train(a2c.A2CConfig(), env, params)
    keys = jax.random.split(jax.random.key(0), 8)
    _, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, a2c.A2CHParams())
    assert final_return(metrics) >= 400
