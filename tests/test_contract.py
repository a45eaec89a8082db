"""The environment contract, checked for every built-in env and a sample of adapters.

One jitted, vmapped 100-step rollout per env (compiled once) provides the
evidence for most checks: observations inside the space, stable pytrees,
determinism per key, and the terminated/truncated/final_obs semantics under a
short time limit.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

ADAPTER_SAMPLE = [
    "gymnax:CartPole-v1",
    "gymnax:Pendulum-v1",
    "gymnax:Breakout-MinAtar",
    "gymnax:MemoryChain-bsuite",
    "brax:inverted_pendulum",
]
NAMES = envs.builtin_names() + ADAPTER_SAMPLE
# Envs whose trajectories do not depend on the key at all (one action, fixed dynamics).
KEY_INDEPENDENT = {"Probe-1", "Probe-3"}
# Brax's default backend compiles ~3x slower than spring; the contract is the same.
OVERRIDES = {"brax:inverted_pendulum": {"backend": "spring"}}
LIMIT, STEPS = 10, 100


def _tree_shapes(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


@functools.cache
def contract_run(name):
    """Rollouts for keys [k0, k0, k1, k2] with params vmapped too; compiled once per env."""
    env, params = envs.make(name, max_episode_steps=LIMIT, **OVERRIDES.get(name, {}))
    obs_space, act_space = env.observation_space(params), env.action_space(params)

    def one(key, params):
        reset_key, key = jax.random.split(key)
        state0, ts0 = env.reset(reset_key, params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            action = act_space.sample(act_key)
            state, ts = env.step(step_key, state, action, params)
            inside = obs_space.contains(ts.obs) & obs_space.contains(ts.info["final_obs"])
            return state, (action, ts, inside)

        _, (actions, traj, inside) = jax.lax.scan(body, state0, jax.random.split(key, STEPS))
        return ts0, obs_space.contains(ts0.obs), actions, traj, inside

    k0, k1, k2 = jax.random.split(jax.random.key(7), 3)
    keys = jnp.stack([k0, k0, k1, k2])
    batched_params = jax.tree.map(lambda x: jnp.stack([jnp.asarray(x)] * 4), params)
    out = jax.jit(jax.vmap(one))(keys, batched_params)
    single = jax.jit(one)(k0, params)
    return env, params, jax.device_get(out), jax.device_get(single)


@pytest.mark.parametrize("name", NAMES)
def test_reset_and_step_pytrees_are_stable(name):
    env, params = envs.make(name, **OVERRIDES.get(name, {}))
    key = jax.random.key(0)
    state0, ts0 = jax.eval_shape(env.reset, key, params)
    action = env.action_space(params).sample(key)
    state1, ts1 = jax.eval_shape(env.step, key, state0, action, params)
    assert _tree_shapes(state0) == _tree_shapes(state1)
    assert _tree_shapes(ts0) == _tree_shapes(ts1)
    assert ts1.reward.shape == () and ts1.reward.dtype == jnp.float32
    assert ts1.terminated.dtype == jnp.bool_ and ts1.truncated.dtype == jnp.bool_
    assert ts1.obs.dtype == env.observation_space(params).dtype


@pytest.mark.parametrize("name", NAMES)
def test_observations_inside_space(name):
    _, _, (ts0, inside0, _, _, inside), _ = contract_run(name)
    assert inside0.all(), "reset observation outside the observation space"
    assert inside.all(), f"step observation outside the space at {np.argwhere(~inside)[:3]}"


@pytest.mark.parametrize("name", NAMES)
def test_same_key_same_trajectory_different_keys_differ(name):
    _, _, (_, _, actions, traj, _), single = contract_run(name)
    rows = jax.tree.map(lambda x: x[0], traj), jax.tree.map(lambda x: x[1], traj)
    jax.tree.map(np.testing.assert_array_equal, *rows)
    # jit(vmap) over keys and params equals jit of one rollout.
    jax.tree.map(
        functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-5),
        jax.tree.map(lambda x: x[0], traj),
        single[3],
    )
    if name not in KEY_INDEPENDENT:
        differs = [
            not np.array_equal(a[0], a[i])
            for a in jax.tree.leaves((actions, traj.obs, traj.reward))
            for i in (2, 3)
        ]
        assert any(differs), "different keys gave identical trajectories"


@pytest.mark.parametrize("name", NAMES)
def test_termination_truncation_and_final_obs(name):
    _, _, (_, _, _, traj, _), _ = contract_run(name)
    term, trunc = traj.terminated, traj.truncated
    assert np.isfinite(traj.reward).all()
    assert not (term & trunc).any(), "a step is both terminated and truncated"
    info = traj.info
    length, done = info["episode_length"], info["episode_done"]
    np.testing.assert_array_equal(done, term | trunc)
    assert (length <= LIMIT).all()
    assert (length[trunc] == LIMIT).all(), "truncated before the time limit"
    assert (length[~(term | trunc)] < LIMIT).all(), "time limit reached without truncation"
    # After an episode ends the next step starts a new one.
    np.testing.assert_array_equal(length[:, 1:][done[:, :-1]], 1)
    # final_obs is the observation itself except where an episode ended.
    not_done = ~(term | trunc)
    obs, final = traj.obs, info["final_obs"]
    np.testing.assert_array_equal(obs[not_done], final[not_done])
