"""VecEnv: batched stepping whose partial auto-reset is exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.vector import VecEnv

N = 16


def run(venv, params, steps, seed=0):
    num_actions = venv.action_space(params).n

    def body(state, key):
        act_key, step_key = jax.random.split(key)
        actions = jax.random.randint(act_key, (venv.num_envs,), 0, num_actions)
        state, ts = venv.step(step_key, state, actions, params)
        return state, (state, ts)

    key = jax.random.key(seed)
    state, _ = venv.reset(key, params)
    return jax.lax.scan(body, state, jax.random.split(key, steps))[1]


@pytest.mark.parametrize("max_resets", [1, 3, N])
def test_partial_reset_equals_full_reset_for_deterministic_resets(max_resets):
    # GridWorld resets to a fixed start, so however resets are computed the
    # trajectories must be identical; max_resets=1 exercises the fallback too.
    env, params = envs.make("GridWorld-Empty-8x8", autoreset=False, max_episode_steps=12)
    full = jax.jit(lambda: run(VecEnv(env, N), params, 60))()
    part = jax.jit(lambda: run(VecEnv(env, N, max_resets), params, 60))()
    assert int(full[1].done.sum(axis=1).max()) > 1, "test needs steps where several episodes end"
    jax.tree.map(np.testing.assert_array_equal, full, part)


def test_matches_vmapped_autoreset_semantics():
    env, params = envs.make("Probe-3", autoreset=False)
    _, ts = jax.jit(lambda: run(VecEnv(env, N, 2), params, 6))()
    np.testing.assert_array_equal(ts.terminated[:, 0], [False, True] * 3)
    np.testing.assert_array_equal(ts.obs[:, 0, 0], [1.0, 0.0] * 3)
    np.testing.assert_array_equal(ts.info["final_obs"][:, 0, 0], [1.0, 1.0] * 3)
    assert ts.info["episode_return"].shape == (6, N)


def test_finished_episodes_get_distinct_fresh_resets():
    env, params = envs.make("GridWorld-Maze", autoreset=False, max_episode_steps=5)
    states, ts = jax.jit(lambda: run(VecEnv(env, N, 4), params, 10))()
    maze = states.env_state.env_state  # EpisodeStatistics(TimeLimit(RandomMaze))
    done = np.asarray(ts.done)
    assert done[4].all()  # every env truncates at step 5 (fallback path: 16 > 4)
    # After each reset the agent stands on the new maze's start, mazes differ across envs.
    np.testing.assert_array_equal(maze.pos[4], maze.start[4])
    walls = np.asarray(maze.walls[4]).reshape(N, -1)
    assert len({w.tobytes() for w in walls}) == N
    assert not np.array_equal(maze.walls[3], maze.walls[4])


def test_partial_path_resets_only_finished_envs():
    env, params = envs.make("Probe-1", autoreset=False, max_episode_steps=3)
    venv = VecEnv(env, 4, max_resets=2)
    key = jax.random.key(0)
    state, _ = venv.reset(key, params)
    # Stagger the time limits: only env 1 ends on the next step.
    state = state._replace(env_state=state.env_state._replace(time=jnp.array([0, 2, 1, 0])))
    state, ts = jax.jit(venv.step)(key, state, jnp.zeros(4, jnp.int32), params)
    np.testing.assert_array_equal(ts.truncated, [False, True, False, False])
    np.testing.assert_array_equal(state.env_state.time, [1, 0, 2, 1])


def test_self_resetting_env_is_stepped_under_vmap():
    env, params = envs.make("Probe-3")  # contains AutoReset
    _, ts = jax.jit(lambda: run(VecEnv(env, N), params, 4))()
    np.testing.assert_array_equal(ts.obs[:, 0, 0], [1.0, 0.0] * 2)
    np.testing.assert_array_equal(ts.info["final_obs"][:, 0, 0], [1.0, 1.0] * 2)


def test_rejects_bad_sizes_and_max_resets_with_autoreset():
    env, params = envs.make("Probe-1")
    with pytest.raises(ValueError, match="max_resets=2 needs an env without AutoReset"):
        VecEnv(env, 4, 2)
    raw, _ = envs.make("Probe-1", autoreset=False)
    with pytest.raises(ValueError, match="num_envs=0"):
        VecEnv(raw, 0)
    with pytest.raises(
        ValueError, match=r"max_resets=5 is not allowed; it must be in \[1, num_envs=4\]"
    ):
        VecEnv(raw, 4, 5)
