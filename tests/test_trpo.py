"""TRPO: conjugate gradient, Fisher-vector products, the trust region, bad configs,
probes, and (slow) CartPole. The contract every agent keeps is tested in
test_agent_contract.py."""

import agents_common as common
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import envs
from jaxrl.agents import trpo

PROBE_CONFIG = trpo.TRPOConfig(
    num_envs=8, rollout_len=16, total_steps=8 * 16 * 60, vf_epochs=4, vf_minibatches=4
)
PROBE_HP = trpo.TRPOHParams(max_kl=0.05, gamma=0.9, vf_lr=3e-3)


def test_conjugate_gradient_matches_dense_solve():
    key_a, key_b = jax.random.split(jax.random.key(0))
    m = jax.random.normal(key_a, (8, 8))
    a = m @ m.T / 8 + 0.1 * jnp.eye(8)  # symmetric positive definite, condition ~ 50
    b = jax.random.normal(key_b, (8,))
    want = jnp.linalg.solve(a, b)
    # In exact arithmetic n iterations solve an n x n system; float32 loses conjugacy, so
    # give it 2n. Iterations after convergence leave x unchanged.
    for iters in (16, 40):
        got = jax.jit(lambda b, iters=iters: trpo.conjugate_gradient(lambda v: a @ v, b, iters))(b)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # b = 0: the residual starts below tolerance and x stays 0 (no NaN from 0 / 0).
    zero = trpo.conjugate_gradient(lambda v: a @ v, jnp.zeros(8), 5)
    np.testing.assert_array_equal(zero, np.zeros(8))


def tiny_policy(discrete: bool):
    """A tiny actor (2-d obs, 3 actions or a 2-d Gaussian) with its KL function."""
    env, params = envs.make("Probe-5" if discrete else "gymnax:Pendulum-v1")
    config = trpo.TRPOConfig(hidden_sizes=(4,))
    network = trpo.make_network(config, env, params)
    obs_dim = env.observation_space(params).shape[0]
    full = network.init(jax.random.key(0), jnp.zeros((1, obs_dim)))
    policy, _ = trpo.split_params(full)
    flat, unravel = ravel_pytree(policy)
    obs = jax.random.normal(jax.random.key(1), (5, obs_dim))
    dist_fn = lambda f: network.apply(unravel(f), obs, method=trpo._policy)
    return network, policy, flat, obs, dist_fn


@pytest.mark.parametrize("discrete", [True, False])
def test_fisher_vector_product_equals_dense_fisher(discrete):
    _, _, flat, _, dist_fn = tiny_policy(discrete)
    # Move away from the (near-uniform) init so the Fisher is not trivial.
    flat = flat + 0.3 * jax.random.normal(jax.random.key(2), flat.shape)
    old = jax.lax.stop_gradient(dist_fn(flat))
    kl = lambda f: old.kl(dist_fn(f)).mean()
    v = jax.random.normal(jax.random.key(3), flat.shape)
    fisher = jax.jit(jax.hessian(kl))(flat)
    got = jax.jit(lambda f, v: trpo.fisher_vector_product(kl, f, v, 0.1))(flat, v)
    np.testing.assert_allclose(got, fisher @ v + 0.1 * v, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("discrete", [True, False])
def test_policy_step_respects_the_kl_bound(discrete):
    network, policy, _, obs, dist_fn = tiny_policy(discrete)
    old_dist = dist_fn(ravel_pytree(policy)[0])
    action = old_dist.sample(jax.random.key(4))
    advantage = jax.random.normal(jax.random.key(5), (5,))
    batch = trpo.Batch(obs, action, old_dist.log_prob(action), advantage, jnp.zeros(5))
    hp = trpo.TRPOHParams(max_kl=0.01)
    new, stats = jax.jit(trpo.policy_step, static_argnums=(0, 4))(
        network, policy, batch, hp, trpo.TRPOConfig()
    )
    new_dist = dist_fn(ravel_pytree(new)[0])
    kl = old_dist.kl(new_dist).mean()
    assert 0.0 < kl <= 0.01 + 1e-5
    np.testing.assert_allclose(stats["kl"], kl, rtol=1e-4)
    ratio = jnp.exp(new_dist.log_prob(action) - batch.log_prob)
    assert (ratio * advantage).mean() > advantage.mean()  # the surrogate improved


def test_line_search_keeps_old_params_when_nothing_improves():
    # KL curvature 2e-4 and no damping give a full step of d = 10 along e0; the surrogate
    # d0 - 100 |d|^2 only improves for d0 < 0.01, first reached by candidate 10 * 0.5^10.
    flat = jnp.array([1.0, -2.0])
    surrogate = lambda f: (f - flat)[0] - 100.0 * jnp.sum(jnp.square(f - flat))
    kl = lambda f: 1e-4 * jnp.sum(jnp.square(f - flat))
    new, stats = trpo.natural_gradient_step(surrogate, kl, flat, 0.01, 0.0, 5, 4)
    np.testing.assert_array_equal(new, flat)
    assert stats["step_fraction"] == 0.0
    # With enough backtracking steps a small enough candidate is accepted.
    new, stats = trpo.natural_gradient_step(surrogate, kl, flat, 0.01, 0.0, 5, 16)
    np.testing.assert_allclose(stats["step_fraction"], 0.5**10)
    np.testing.assert_allclose(new - flat, [10.0 * 0.5**10, 0.0], rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vf_minibatches": 3}, "vf_minibatches=3 does not divide num_envs \\* rollout_len=1024"),
        ({"num_envs": 0}, "num_envs=0 is not allowed"),
        ({"cg_iters": 0}, "cg_iters=0 is not allowed"),
        ({"line_search_steps": 1.5}, "line_search_steps=1.5 is not allowed"),
        ({"total_steps": 100}, "total_steps=100 is less than one rollout"),
        ({"activation": "sigmoid"}, "activation='sigmoid' is not allowed"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        trpo.TRPOConfig(**kwargs)


def test_bad_hparams_raise():
    with pytest.raises(ValueError, match=r"TRPOHParams.max_kl=0.0 is not allowed"):
        trpo.TRPOHParams(max_kl=0.0).validate()
    with pytest.raises(ValueError, match=r"TRPOHParams.gamma=1.5 is not allowed"):
        trpo.TRPOHParams(gamma=1.5).validate()


@pytest.fixture(scope="module")
def probe_runs():
    return common.train_probes(trpo, {i: (i, PROBE_CONFIG) for i in (1, 4, 5)}, PROBE_HP)


def test_probe1_value_bootstraps_through_truncation(probe_runs):
    common.check_probe1_value(probe_runs[1], atol=1.0)


def test_probe4_and_5_learn_the_best_action(probe_runs):
    common.check_probe4_and_5_actions(probe_runs[4], probe_runs[5], min_prob=0.9)


def test_every_update_stays_in_the_trust_region(probe_runs):
    metrics = probe_runs[5].metrics
    assert metrics["kl"].shape == (2, PROBE_CONFIG.num_updates)
    assert (metrics["kl"] <= PROBE_HP.max_kl + 1e-6).all()


def test_only_policy_subtree_takes_the_policy_step(probe_runs):
    # With vf_lr ~ 0 the critic stays put; the policy moves. Probe-5's compiled train
    # serves: new hyperparameter values do not recompile.
    run = probe_runs[5]
    state, _ = run.train(run.keys, PROBE_HP.replace(vf_lr=1e-30))
    network = trpo.make_network(PROBE_CONFIG, run.env, run.env_params)
    # make_train initialises from the second of three keys split from the seed's key.
    init_key = lambda key: jax.random.split(key, 3)[1]
    init = jax.jit(jax.vmap(lambda key: network.init(init_key(key), jnp.zeros((1, 1)))))
    (pol0, cri0), (pol1, cri1) = trpo.split_params(init(run.keys)), trpo.split_params(state.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), cri0, cri1)
    flat = jax.vmap(lambda policy: ravel_pytree(policy)[0])  # per seed
    for before, after in zip(flat(pol0), flat(pol1), strict=True):
        assert not np.allclose(before, after)


@pytest.mark.slow
def test_cartpole_learns():
    common.check_cartpole_final_return(trpo, trpo.TRPOConfig(), trpo.TRPOHParams(), minimum=450)
