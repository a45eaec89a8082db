"""The env API's shared pieces: spaces, validation, wrappers, registry, probes."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from jax.experimental import checkify

import envs
from envs import running_stats, wrappers
from envs._validation import apply_overrides, check_range
from envs.core import Environment, restart, transition
from envs.spaces import Box, Discrete


# A continuous test env: obs is the last action, reward is -|action|, NaN reward
# for actions above `nan_above`.
@struct.dataclass
class EchoParams:
    nan_above: float = 100.0


class Echo(Environment):
    def default_params(self, **overrides):
        return apply_overrides(EchoParams(), overrides)

    def reset(self, key, params):
        return jnp.zeros(2), restart(jnp.zeros(2, jnp.float32))

    def step(self, key, state, action, params):
        action = jnp.asarray(action, jnp.float32)
        reward = jnp.where(action[0] > params.nan_above, jnp.nan, -jnp.abs(action).sum())
        return action, transition(action, reward, False)

    def observation_space(self, params):
        return Box(-2.0, 2.0, (2,))

    def action_space(self, params):
        return Box(np.array([-2.0, 0.0]), np.array([2.0, 1.0]), (2,))


def rollout(env, params, actions, key=None):
    """Steps ``env`` through ``actions`` from reset; returns the timesteps (stacked) and states."""
    key = jax.random.key(0) if key is None else key

    def body(state, inputs):
        step_key, action = inputs
        state, ts = env.step(step_key, state, action, params)
        return state, (state, ts)

    state, _ = env.reset(key, params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(actions))
    _, (states, ts) = jax.lax.scan(body, state, (keys, actions))
    return states, ts


# Spaces -------------------------------------------------------------------


def test_discrete_space_samples_and_contains():
    space = Discrete(3)
    samples = jax.vmap(space.sample)(jax.random.split(jax.random.key(0), 300))
    assert samples.dtype == jnp.int32
    assert set(np.asarray(samples).tolist()) == {0, 1, 2}
    assert bool(space.contains(2)) and not bool(space.contains(3)) and not bool(space.contains(-1))
    assert not bool(space.contains(jnp.zeros(2, jnp.int32)))
    with pytest.raises(ValueError, match="n=0"):
        Discrete(0)


def test_box_space_samples_inside_and_rejects_outside():
    space = Box(jnp.array([-1.0, 0.0]), jnp.array([1.0, jnp.inf]), (2,))
    samples = jax.vmap(space.sample)(jax.random.split(jax.random.key(1), 200))
    assert bool(jnp.all(jax.vmap(space.contains)(samples)))
    assert not bool(space.contains(jnp.array([2.0, 0.0])))
    assert not bool(space.contains(jnp.array([0.0, jnp.nan])))
    assert not bool(space.contains(jnp.zeros(3)))
    with pytest.raises(ValueError, match="low"):
        Box(1.0, 0.0, (1,))


# Validation ---------------------------------------------------------------


def test_check_range_names_field_value_and_interval():
    with pytest.raises(ValueError, match=r"P\.slip=1\.5 is not allowed; it must be in \[0, 1\]"):
        check_range("P", "slip", 1.5, 0, 1)
    with pytest.raises(ValueError, match=r"must be in \(0, inf\)"):
        check_range("P", "rate", np.array([1.0, 0.0]), 0, low_open=True)
    check_range("P", "slip", jnp.array([0.0, 1.0]), 0, 1)  # concrete and valid: no error
    jax.jit(lambda x: check_range("P", "slip", x, 0, 1))(5.0)  # tracers are skipped


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_check_range_refuses_non_finite_values_even_when_unbounded(value):
    with pytest.raises(ValueError, match=r"P\.cost=.* is not allowed; it must be in \[0, inf\)"):
        check_range("P", "cost", value, 0)
    with pytest.raises(ValueError, match=r"must be in \(-inf, inf\)"):
        check_range("P", "theta", np.array([0.0, value]), -np.inf, np.inf)


def test_apply_overrides_rejects_unknown_fields():
    with pytest.raises(ValueError, match="no field.*bogus.*allowed fields: nan_above"):
        apply_overrides(EchoParams(), {"bogus": 1})


@struct.dataclass
class KindParams:
    rate: float = 0.5
    steps: int = 10
    flag: bool = False
    mode: str = "a"
    weights: jax.Array = struct.field(default_factory=lambda: jnp.zeros(2))


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("rate", "abc", "a number"),
        ("rate", None, "a number"),
        ("rate", True, "a number"),
        ("rate", [0.1, "x"], "a number"),
        ("steps", 2.7, "a whole number"),
        ("steps", np.inf, "a whole number"),
        ("flag", 1, "bool (True or False)"),
        ("mode", 3, "a string"),
        ("weights", "zeros", "a number"),
    ],
)
def test_apply_overrides_refuses_values_of_the_wrong_kind(field, value, allowed):
    """Before, these reached the env's step and failed deep inside a compile (issue 19)."""
    message = f"KindParams.{field}={value!r} is not allowed; it must be {allowed}"
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_overrides(KindParams(), {field: value})


def test_apply_overrides_accepts_numbers_batches_and_whole_floats():
    params = apply_overrides(
        KindParams(), {"rate": 1, "steps": 20.0, "flag": np.bool_(True), "weights": [1.0, 2.0]}
    )
    assert params.rate == 1 and params.steps == 20 and isinstance(params.steps, int)
    np.testing.assert_array_equal(params.weights, [1.0, 2.0])
    batch = apply_overrides(KindParams(), {"rate": jnp.linspace(0.1, 0.4, 4)})  # to vmap over
    assert batch.rate.shape == (4,)


@pytest.mark.parametrize("value", [2.7, 0, True, "10"])
def test_make_refuses_a_time_limit_that_is_not_a_whole_positive_number(value):
    with pytest.raises(ValueError, match=f"max_episode_steps={value!r} is not allowed"):
        envs.make("Probe-1", max_episode_steps=value)


# Wrappers -----------------------------------------------------------------


def test_time_limit_truncates_and_never_terminates_probe1():
    env, params = envs.make("Probe-1", max_episode_steps=8, autoreset=False)
    _, ts = rollout(env, params, jnp.zeros(8, jnp.int32))
    np.testing.assert_array_equal(ts.truncated, [False] * 7 + [True])
    assert not bool(ts.terminated.any())


def test_termination_wins_over_time_limit():
    # Probe-3 terminates at its second step; a limit of 2 must not also truncate.
    env, params = envs.make("Probe-3", max_episode_steps=2, autoreset=False)
    _, ts = rollout(env, params, jnp.zeros(2, jnp.int32))
    np.testing.assert_array_equal(ts.terminated, [False, True])
    np.testing.assert_array_equal(ts.truncated, [False, False])


def test_autoreset_keeps_final_obs_and_restarts():
    env, params = envs.make("Probe-3")
    _, ts = rollout(env, params, jnp.zeros(6, jnp.int32))
    # Probe-3: obs 0 -> 1 -> terminal; after the terminal step obs is the new episode's 0.
    np.testing.assert_array_equal(ts.terminated, [False, True] * 3)
    np.testing.assert_array_equal(ts.info["final_obs"][:, 0], [1.0, 1.0] * 3)
    np.testing.assert_array_equal(ts.obs[:, 0], [1.0, 0.0] * 3)
    np.testing.assert_array_equal(ts.reward, [0.0, 1.0] * 3)


def test_autoreset_after_truncation_keeps_pre_reset_obs():
    env, params = envs.make("Probe-1", max_episode_steps=3)
    states, ts = rollout(env, params, jnp.zeros(7, jnp.int32))
    np.testing.assert_array_equal(ts.truncated, [False, False, True] * 2 + [False])
    assert not bool(ts.terminated.any())
    # The time counter restarts after each truncation.
    np.testing.assert_array_equal(states.env_state.env_state.time, [1, 2, 0, 1, 2, 0, 1])


def test_episode_statistics_report_finished_episodes():
    env, params = envs.make("Probe-1", max_episode_steps=4)
    _, ts = rollout(env, params, jnp.zeros(9, jnp.int32))
    done = np.asarray(ts.info["episode_done"])
    np.testing.assert_array_equal(np.flatnonzero(done), [3, 7])
    np.testing.assert_array_equal(ts.info["episode_return"][done], [4.0, 4.0])
    np.testing.assert_array_equal(ts.info["episode_length"][done], [4, 4])
    np.testing.assert_array_equal(ts.info["episode_return"][:5], [1, 2, 3, 4, 1])


def test_info_structure_is_identical_after_reset_and_step():
    env, params = envs.make("Probe-2")
    key = jax.random.key(0)
    state, reset_ts = env.reset(key, params)
    _, step_ts = env.step(key, state, 0, params)
    shapes = lambda t: jax.tree.map(lambda x: (jnp.shape(x), jnp.asarray(x).dtype), t)
    assert shapes(reset_ts) == shapes(step_ts)


def test_normalize_observation_tracks_statistics_and_freezes():
    env = wrappers.NormalizeObservation(wrappers.AutoReset(Echo()))
    params = env.default_params()
    actions = jax.random.normal(jax.random.key(3), (2000, 2)) * jnp.array([[0.5, 0.2]]) + 1.0
    states, ts = jax.jit(lambda a: rollout(env, params, a))(actions)
    stats = jax.tree.map(lambda x: x[-1], states.stats)
    np.testing.assert_allclose(stats.mean, [1.0, 1.0], atol=0.05)
    np.testing.assert_allclose(np.sqrt(stats.var), [0.5, 0.2], rtol=0.1)
    np.testing.assert_allclose(ts.obs[-1], running_stats.normalize(stats, actions[-1]), atol=1e-5)
    np.testing.assert_allclose(ts.info["final_obs"], ts.obs, atol=1e-6)  # never done

    frozen = wrappers.NormalizeObservation.freeze(jax.tree.map(lambda x: x[-1], states))
    state, _ = env.step(jax.random.key(0), frozen, jnp.array([50.0, 50.0]), params)
    np.testing.assert_array_equal(state.stats.mean, stats.mean)


def test_running_stats_merge_equals_one_pass():
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    one = running_stats.update(running_stats.init((3,)), x)
    parts = running_stats.merge(
        running_stats.update(running_stats.init((3,)), x[:30]),
        running_stats.update(running_stats.init((3,)), x[30:]),
    )
    np.testing.assert_allclose(one.mean, x.mean(0), atol=1e-5)
    np.testing.assert_allclose(one.var, x.var(0), rtol=1e-3)
    np.testing.assert_allclose(parts.mean, one.mean, atol=1e-5)
    np.testing.assert_allclose(parts.var, one.var, rtol=1e-3)


def test_clip_and_rescale_actions():
    params = EchoParams()
    _, ts = wrappers.ClipAction(Echo()).step(
        jax.random.key(0), None, jnp.array([5.0, -3.0]), params
    )
    np.testing.assert_array_equal(ts.obs, [2.0, 0.0])
    env = wrappers.RescaleAction(Echo())
    space = env.action_space(params)
    assert (space.low.tolist(), space.high.tolist()) == ([-1.0, -1.0], [1.0, 1.0])
    _, ts = env.step(jax.random.key(0), None, jnp.array([1.0, -1.0]), params)
    np.testing.assert_array_equal(ts.obs, [2.0, 0.0])
    _, ts = env.step(jax.random.key(0), None, jnp.array([0.0, 0.0]), params)
    np.testing.assert_array_equal(ts.obs, [0.0, 0.5])
    with pytest.raises(ValueError, match="continuous"):
        wrappers.RescaleAction(envs.make_raw("Probe-4")[0]).action_space(None)


def test_flatten_observation():
    env = wrappers.FlattenObservation(wrappers.AutoReset(Echo()))
    assert env.observation_space(EchoParams()).shape == (2,)
    _, ts = env.reset(jax.random.key(0), EchoParams())
    assert ts.obs.shape == (2,) and ts.info["final_obs"].shape == (2,)


def test_debug_checks_name_out_of_range_action():
    env, params = envs.make("Probe-4", raw=True)
    env = wrappers.DebugChecks(env, via="checkify")

    @jax.jit
    @checkify.checkify
    def step(action):
        state, _ = env.reset(jax.random.key(0), params)
        return env.step(jax.random.key(1), state, action, params)[1].reward

    err, _ = step(jnp.asarray(1))
    err.throw()  # a valid action passes
    err, _ = step(jnp.asarray(7))
    with pytest.raises(checkify.JaxRuntimeError, match=r"Probe-4: action 7 is outside.*\[0, 2\)"):
        err.throw()


def test_debug_checks_catch_nan_reward_and_bad_obs():
    env = wrappers.DebugChecks(Echo(), via="checkify")
    params = EchoParams(nan_above=0.5)
    step = jax.jit(checkify.checkify(lambda a: env.step(jax.random.key(0), None, a, params)))
    err, _ = step(jnp.array([1.0, 0.5]))
    with pytest.raises(checkify.JaxRuntimeError, match="reward nan is not finite"):
        err.throw()
    with pytest.raises(checkify.JaxRuntimeError, match="outside the action space"):
        step(jnp.array([-3.0, 0.5]))[0].throw()


def probe4_rollout(env, params, bad_action):
    def run(key):
        state, _ = env.reset(key, params)

        def body(state, key):
            state, ts = env.step(key, state, jnp.asarray(1 + bad_action), params)
            return state, ts.reward

        return jax.lax.scan(body, state, jax.random.split(key, 4))[1].sum()

    return run


def test_debug_checks_report_under_vmap_over_seeds_without_checkify():
    """The default reports from inside jit(vmap(scan)), as a training run is built
    (before: checkify and vmap did not compose, and without checkify it did not
    compile; issue 19)."""
    env, params = envs.make("Probe-4", raw=True)
    env = wrappers.DebugChecks(env)
    keys = jax.random.split(jax.random.key(0), 3)
    good = jax.jit(jax.vmap(probe4_rollout(env, params, 0)))(keys)
    np.testing.assert_array_equal(good, [4.0, 4.0, 4.0])  # Probe-4 pays 1 for action 1
    with pytest.raises(Exception, match=r"Probe-4: action 6 is outside .*allowed \[0, 2\)"):
        jax.block_until_ready(jax.jit(jax.vmap(probe4_rollout(env, params, 5)))(keys))
    with pytest.raises(ValueError, match="via='print' is not allowed"):
        wrappers.DebugChecks(env, via="print")


# Registry -----------------------------------------------------------------


def test_unknown_name_lists_closest():
    with pytest.raises(ValueError, match="Closest registered names: GridWorld-FourRooms"):
        envs.make("GridWorld-FourRoom")
    with pytest.raises(ValueError, match="Unknown environment 'nonsense:x'"):
        envs.make("nonsense:x")


def test_make_rejects_bad_time_limit_and_unknown_params():
    with pytest.raises(ValueError, match="max_episode_steps=0"):
        envs.make("Probe-1", max_episode_steps=0)
    with pytest.raises(ValueError, match="no field.*speed"):
        envs.make("Probe-1", speed=3)


def test_make_wraps_for_training_and_raw_is_bare():
    env, _ = envs.make("Probe-1")
    assert isinstance(env, wrappers.EpisodeStatistics)
    assert isinstance(env.env, wrappers.AutoReset)
    assert isinstance(env.env.env, wrappers.TimeLimit)
    assert env.find(wrappers.TimeLimit).max_episode_steps == 100
    raw, _ = envs.make("Probe-1", raw=True)
    assert type(raw).__name__ == "Probe" and raw is raw.unwrapped


def test_state_methods_reach_through_state_wrapping_wrappers():
    env, params = envs.make("GridWorld-Empty-8x8")  # three wrapper layers, two wrap the state
    state, _ = env.reset(jax.random.key(0), params)
    raw_state = state.env_state.env_state
    np.testing.assert_array_equal(
        env.render(state, params), env.unwrapped.render(raw_state, params)
    )
    assert int(env.state_index(state, params)) == int(env.unwrapped.state_index(raw_state, params))
    assert env.tabular_model(params).P.shape[1] == 4


# Probes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "index, action, expected",
    [
        (1, 0, lambda o: 1.0),
        (2, 0, lambda o: o),
        (4, 1, lambda o: 1.0),
        (4, 0, lambda o: -1.0),
        (5, 1, lambda o: 1.0 if o > 0 else -1.0),
        (5, 0, lambda o: -1.0 if o > 0 else 1.0),
    ],
)
def test_probe_rewards(index, action, expected):
    env, params = envs.make(f"Probe-{index}", raw=True)
    for seed in range(4):
        state, ts = env.reset(jax.random.key(seed), params)
        _, nxt = env.step(jax.random.key(seed), state, action, params)
        assert float(nxt.reward) == expected(float(ts.obs[0]))
        assert bool(nxt.terminated) == (index != 1)


def test_probe2_and_probe5_observations_vary_with_key():
    env, params = envs.make("Probe-5", raw=True)
    obs = jax.vmap(lambda k: env.reset(k, params)[1].obs[0])(
        jax.random.split(jax.random.key(0), 64)
    )
    assert set(np.asarray(obs).tolist()) == {-1.0, 1.0}


def test_running_stats_normalize_batches_without_rank_promotion():
    stats = running_stats.update(running_stats.init((3,)), jnp.arange(12.0).reshape(4, 3))
    batch = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(
        running_stats.normalize(stats, batch)[1], running_stats.normalize(stats, batch[1])
    )
