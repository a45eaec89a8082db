"""The gymnax and Brax adapters: the env contract on a sample, and the flag mapping.

Each sampled environment compiles one jitted, vmapped rollout (module-scoped);
CartPole compiles one more, with params as an argument, for the flag tests.
Brax runs on the "spring" backend, which compiles fastest.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.adapters.brax import BraxEnv, BraxParams
from envs.adapters.gymnax import GymnaxEnv

STEPS = 40
# name -> (make kwargs, random actions?). The Brax pendulum gets zero actions so
# it stays up and its 5-step episodes end by truncation only.
SAMPLE = {
    "gymnax:CartPole-v1": ({}, True),
    "gymnax:Pendulum-v1": ({}, True),
    "gymnax:Breakout-MinAtar": ({}, True),
    "gymnax:MemoryChain-bsuite": ({}, True),
    "brax:inverted_pendulum": ({"backend": "spring", "max_episode_steps": 5}, False),
}


@functools.cache
def _rollout(name):
    """A jit(vmap) rollout for keys [k0, k0, k1], compiled once per env."""
    kwargs, random_actions = SAMPLE[name]
    env, params = envs.make(name, **kwargs)
    act_space = env.action_space(params)

    def one(key):
        reset_key, key = jax.random.split(key)
        state, ts0 = env.reset(reset_key, params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            action = act_space.sample(act_key)
            if not random_actions:
                action = jnp.zeros_like(action)
            state, ts = env.step(step_key, state, action, params)
            return state, (action, ts)

        _, (actions, traj) = jax.lax.scan(body, state, jax.random.split(key, STEPS))
        return ts0, actions, traj

    k0, k1 = jax.random.split(jax.random.key(0))
    out = jax.jit(jax.vmap(one))(jnp.stack([k0, k0, k1]))
    return (name, env, params, *jax.device_get(out))


@pytest.fixture(scope="module", params=list(SAMPLE))
def rollout(request):
    """``(name, env, params, ts0, actions, traj)``, each with a leading batch of 3."""
    return _rollout(request.param)


def test_rollout_types_under_jit_and_vmap(rollout):
    _, env, params, ts0, actions, traj = rollout
    space = env.observation_space(params)
    assert ts0.obs.shape == (3, *space.shape) and ts0.obs.dtype == space.dtype
    assert traj.obs.shape == (3, STEPS, *space.shape) and traj.obs.dtype == space.dtype
    assert traj.reward.shape == (3, STEPS) and traj.reward.dtype == np.float32
    assert traj.terminated.dtype == np.bool_ and traj.truncated.dtype == np.bool_
    assert actions.dtype == env.action_space(params).dtype


def test_observations_inside_space(rollout):
    _, env, params, ts0, _, traj = rollout
    contains = jax.vmap(env.observation_space(params).contains)
    flat = traj.obs.reshape(-1, *traj.obs.shape[2:])
    final = traj.info["final_obs"].reshape(flat.shape)
    assert np.all(contains(ts0.obs)), "reset observation outside the space"
    assert np.all(contains(flat)), "step observation outside the space"
    assert np.all(contains(final)), "final observation outside the space"


def test_same_key_same_trajectory(rollout):
    _, _, _, ts0, actions, traj = rollout
    for leaf in jax.tree.leaves((ts0, actions, traj)):
        np.testing.assert_array_equal(leaf[0], leaf[1])
    assert not np.array_equal(traj.obs[0], traj.obs[2]), "different keys, same trajectory"


def test_flags_are_exclusive_and_final_obs_kept(rollout):
    _, _, _, _, _, traj = rollout
    assert not np.any(traj.terminated & traj.truncated)
    done = traj.terminated | traj.truncated
    continuing = ~done.reshape(done.shape + (1,) * (traj.obs.ndim - 2))
    # Without an episode end, final_obs is the observation itself.
    np.testing.assert_array_equal(
        np.where(continuing, traj.info["final_obs"], 0), np.where(continuing, traj.obs, 0)
    )


@pytest.mark.parametrize("rollout", ["brax:inverted_pendulum"], indirect=True)
def test_brax_truncates_at_the_time_limit(rollout):
    _, _, _, _, _, traj = rollout
    expected = (np.arange(STEPS) + 1) % 5 == 0
    np.testing.assert_array_equal(traj.truncated, np.broadcast_to(expected, traj.truncated.shape))
    assert not traj.terminated.any()
    assert np.all(traj.info["episode_length"][:, expected] == 5)
    # The final observation continues the episode; the returned one is a fresh reset.
    assert not np.allclose(traj.info["final_obs"][:, expected], traj.obs[:, expected])


# CartPole flags ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole():
    """``run(key, actions, params)``: one CartPole episode stream, compiled once."""
    env, params = envs.make("gymnax:CartPole-v1", max_episode_steps=10)

    def run(key, actions, params):
        reset_key, key = jax.random.split(key)
        state, _ = env.reset(reset_key, params)

        def body(state, inputs):
            key, action = inputs
            state, ts = env.step(key, state, action, params)
            return state, ts

        keys = jax.random.split(key, actions.shape[0])
        return jax.lax.scan(body, state, (keys, actions))[1]

    return env, params, jax.jit(run)


def test_cartpole_truncates_at_max_steps_in_episode(cartpole):
    env, params, run = cartpole
    assert params.max_steps_in_episode == 10
    balancing = jnp.arange(30, dtype=jnp.int32) % 2  # alternate pushes: the pole stays up
    traj = jax.device_get(run(jax.random.key(1), balancing, params))
    expected = (np.arange(30) + 1) % 10 == 0
    np.testing.assert_array_equal(traj.truncated, expected)
    assert not traj.terminated.any()
    np.testing.assert_array_equal(traj.info["episode_length"][expected], 10)
    # final_obs continues the episode: CartPole integrates x += tau * x_dot.
    last = np.flatnonzero(expected)[0]
    before = traj.obs[last - 1]
    np.testing.assert_allclose(
        traj.info["final_obs"][last][0], before[0] + params.tau * before[1], atol=1e-6
    )
    assert not np.allclose(traj.info["final_obs"][last], traj.obs[last])


def test_cartpole_terminates_when_the_pole_falls(cartpole):
    env, params, run = cartpole
    params = params.replace(max_steps_in_episode=500)  # same structure: no recompile
    always_left = jnp.zeros(30, jnp.int32)
    traj = jax.device_get(run(jax.random.key(1), always_left, params))
    first_end = np.flatnonzero(traj.terminated | traj.truncated)[0]
    assert first_end < 29
    assert traj.terminated[first_end] and not traj.truncated[first_end]
    theta = traj.info["final_obs"][first_end][2]
    assert abs(theta) > params.theta_threshold_radians


def test_gymnax_discrete_actions_are_clipped():
    env, params = envs.make("gymnax:CartPole-v1", raw=True)
    state, _ = env.reset(jax.random.key(0), params)
    _, ts_big = env.step(jax.random.key(1), state, 7, params)
    _, ts_one = env.step(jax.random.key(1), state, 1, params)
    np.testing.assert_array_equal(ts_big.obs, ts_one.obs)


# Every gymnax environment, by shape only (no compilation) ------------------------


@pytest.mark.parametrize(
    "env_id", [e for e in GymnaxEnv.available() if e != "MNISTBandit-bsuite"]
)  # MNISTBandit downloads MNIST when built
def test_every_gymnax_env_has_stable_pytrees_and_exact_dtypes(env_id):
    env, params = envs.make(f"gymnax:{env_id}")
    key = jax.random.key(0)
    state0, ts0 = jax.eval_shape(env.reset, key, params)
    action = env.action_space(params).sample(key)
    state1, ts1 = jax.eval_shape(env.step, key, state0, action, params)

    def types(tree):
        return jax.tree.map(lambda x: (x.shape, x.dtype), tree)

    assert types(state0) == types(state1) and types(ts0) == types(ts1)
    assert ts0.obs.dtype == env.observation_space(params).dtype
    assert ts1.reward.dtype == jnp.float32 and ts1.truncated.dtype == jnp.bool_


def test_gymnax_dtypes_follow_the_observations_not_gymnax_spaces():
    # gymnax declares int32 for Catch and float32 for FourRooms; both return the other.
    catch, params = envs.make("gymnax:Catch-bsuite", raw=True)
    assert catch.observation_space(params).dtype == np.float32
    four_rooms, params = envs.make("gymnax:FourRooms-misc", raw=True)
    assert four_rooms.observation_space(params).dtype == np.int32


@pytest.mark.parametrize(
    "env_id",
    ["UmbrellaChain-bsuite", "MetaMaze-misc", "GaussianBandit-misc"],
)
def test_corrected_gymnax_bounds_contain_the_observations(env_id):
    # gymnax's declared bounds miss these observations (MemoryChain is in SAMPLE).
    env, params = envs.make(f"gymnax:{env_id}", max_episode_steps=15)
    obs_space, act_space = env.observation_space(params), env.action_space(params)

    def inside(key):
        reset_key, key = jax.random.split(key)
        state, ts = env.reset(reset_key, params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            state, ts = env.step(step_key, state, act_space.sample(act_key), params)
            return state, obs_space.contains(ts.obs) & obs_space.contains(ts.info["final_obs"])

        _, steps_inside = jax.lax.scan(body, state, jax.random.split(key, 40))
        return obs_space.contains(ts.obs) & steps_inside.all()

    assert jax.jit(jax.vmap(inside))(jax.random.split(jax.random.key(0), 8)).all()


def test_bernoulli_bandit_time_bound_follows_the_episode_length():
    # The normalised time (2 t / 100 - 1) passes gymnax's bound of 1 beyond t = 100.
    env, params = envs.make("gymnax:BernoulliBandit-misc", raw=True, max_episode_steps=150)
    assert params.max_steps_in_episode == 150.0  # kept a float, as gymnax needs
    assert isinstance(params.max_steps_in_episode, float)
    assert env.observation_space(params).high[-1] == 2.0


# Params and names -------------------------------------------------------------


def test_gymnax_params_overrides_and_time_limit():
    env, params = envs.make("gymnax:CartPole-v1", max_episode_steps=7, gravity=5.0)
    assert params.max_steps_in_episode == 7 and params.gravity == 5.0
    assert env.find(envs.wrappers.TimeLimit) is None  # gymnax truncates itself
    with pytest.raises(ValueError, match="allowed fields: max_steps_in_episode"):
        envs.make("gymnax:CartPole-v1", gravity_x=1.0)


def test_brax_params_and_time_limit():
    env, params = envs.make("brax:inverted_pendulum")
    assert params == BraxParams(backend="generalized")
    assert env.find(envs.wrappers.TimeLimit).max_episode_steps == 1000
    assert jax.tree.leaves(params) == []  # backend is static
    raw = env.unwrapped
    assert raw.name == "brax:inverted_pendulum" and raw.description.startswith("Brax")
    space = raw.observation_space(params)
    assert space.shape == (4,) and space.dtype == np.float32
    assert raw.action_space(params).shape == (1,)


def test_brax_env_first_built_inside_a_trace_serves_later_traces():
    # The lazily built Brax model must not keep tracers of the trace that built it.
    raw = BraxEnv("inverted_pendulum")
    params = BraxParams(backend="spring")
    first = jax.jit(lambda key: raw.reset(key, params)[1].obs)(jax.random.key(0))
    again = jax.jit(lambda key: raw.reset(key, params)[1].obs * 1.0)(jax.random.key(0))
    np.testing.assert_array_equal(first, again)


def test_bad_brax_backend_raises():
    with pytest.raises(ValueError, match="backend='warp' is not allowed.*spring"):
        envs.make("brax:inverted_pendulum", backend="warp")


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("gymnax:NoSuchEnv", "gymnax:"),
        ("gymnax:Cartpole-v1", "gymnax:CartPole-v1"),
        ("brax:nope", "brax:"),
        ("brax:invertedpendulum", "brax:inverted_pendulum"),
    ],
)
def test_unknown_names_list_close_names(name, suggestion):
    with pytest.raises(ValueError, match=f"Closest registered names: .*{suggestion}"):
        envs.make(name)
    adapter = GymnaxEnv if name.startswith("gymnax") else BraxEnv
    with pytest.raises(ValueError, match="Unknown"):
        adapter(name.partition(":")[2])


def test_available_lists_every_suite_env():
    import brax.envs
    import gymnax

    assert GymnaxEnv.available() == list(gymnax.registered_envs)
    assert set(BraxEnv.available()) == set(brax.envs._envs)
    assert f"gymnax:{GymnaxEnv.available()[0]}" in envs.registered()


def test_gymnax_imports_seaborn_only_when_used():
    """gymnax's Pong imports seaborn at the top (0.9 s of start-up, issue 20); the adapter
    defers it to the first use, which still gets the real module."""
    import subprocess
    import sys

    script = (
        "import sys, envs; envs.make('gymnax:CartPole-v1')\n"
        "assert 'seaborn.relational' not in sys.modules, 'seaborn was imported'\n"
        "import gymnax.environments.misc.pong as pong\n"
        "assert len(pong.sns.color_palette('Set1', 3)) == 3\n"
        "import seaborn\n"
        "assert type(seaborn).__name__ == 'module' and 'seaborn.relational' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
