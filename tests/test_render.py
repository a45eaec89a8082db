"""render: one episode, drawn the way each env is drawn; the episode stops where the
env terminates."""

import jax
import numpy as np
import pytest

import envs
from jaxrl import planning, render
from jaxrl.agents import tabular


def random_policy(env_name, **overrides):
    env, params = envs.make(env_name, **overrides)
    space = env.action_space(params)

    def act(key, obs):
        return jax.vmap(space.sample)(jax.random.split(key, obs.shape[0]))

    return act


@pytest.mark.parametrize(
    ("env_name", "overrides", "suffix"),
    [
        ("GridWorld-Empty-8x8", {}, ".gif"),
        ("Inventory", {}, ".png"),
        ("Recommendation", {}, ".png"),
        ("gymnax:CartPole-v1", {}, ".png"),
        ("brax:inverted_pendulum", {"backend": "spring"}, ".html"),
    ],
)
def test_render_writes_the_drawing_of_the_env(tmp_path, env_name, overrides, suffix):
    act = random_policy(env_name, **overrides)
    path = render.render(env_name, act, jax.random.key(0), tmp_path / "episode.txt", overrides)
    assert path == tmp_path / f"episode{suffix}"
    assert path.stat().st_size > 1000
    if suffix == ".html":
        assert "<html" in path.read_text().lower()


def test_the_episode_stops_where_the_env_terminates():
    # The optimal policy of the empty grid reaches the goal by a shortest path.
    env, params = envs.make("GridWorld-Empty-8x8", raw=True)
    model = planning.tabular_model(env, params)
    act = tabular.table_policy(env, params, planning.value_iteration(model.P, model.R, 0.99).policy)
    states, steps, alive = jax.jit(render.episode, static_argnums=(0, 2, 4))(
        env, params, act, jax.random.key(0), 50
    )
    alive = np.asarray(alive)
    length = int(alive.sum())
    assert alive[:length].all() and not alive[length:].any()
    assert (
        bool(steps.terminated[length - 1]) and not np.asarray(steps.terminated)[: length - 1].any()
    )
    assert np.asarray(steps.reward)[length - 1] > 0  # the goal's reward
    assert jax.tree.leaves(states)[0].shape[0] == 51  # the reset state and 50 steps
