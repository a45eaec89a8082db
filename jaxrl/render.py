"""Render one episode of a policy, in the form that suits the environment.

``render(env_name, act, key, path)`` runs one episode (compiled, one ``lax.scan``
over the env's time limit) of the raw environment with ``act`` and writes:

- grid worlds and mazes: a GIF of the agent's moves (``envs.gridworld.save_gif``);
- ``Inventory``: a plot of stock, orders, demand and profit (``envs.inventory``);
- ``Recommendation``: a plot of the user's satisfaction and clicks;
- ``brax:*``: Brax's own HTML viewer (``brax.io.html``), a self-contained page;
- anything else: a plot of reward and cumulative return over the episode.

The drawing itself lives beside each env (``envs`` never imports ``jaxrl``); this
module only rolls the episode out and picks the drawing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from envs.gridworld import GridWorld, RandomMaze, save_gif
from envs.inventory import Inventory, plot_episode
from envs.recommendation import Recommendation, plot_user


def episode(
    env: Any, params: Any, act: Callable, key: jax.Array, max_steps: int
) -> tuple[Any, Any, jax.Array]:
    """``(states [T+1], timesteps [T], alive [T])`` of one episode of a raw env:
    ``states[0]`` is the reset state; ``alive[t]`` is False for steps after the
    episode terminated (the env keeps stepping; those steps are to be dropped).

    Args:
        act: a batched policy ``act(key, obs [N, ...]) -> action [N, ...]`` (an agent's
            ``make_policy``), called here with N = 1.
    """
    reset_key, key = jax.random.split(key)
    state, ts = env.reset(reset_key, params)

    def body(carry, key):
        state, obs, done = carry
        act_key, step_key = jax.random.split(key)
        action = act(act_key, obs[None])[0]
        state, ts = env.step(step_key, state, action, params)
        return (state, ts.obs, done | ts.terminated), (state, ts, ~done)

    carry = (state, ts.obs, jnp.zeros((), bool))
    _, (states, steps, alive) = jax.lax.scan(body, carry, jax.random.split(key, max_steps))
    states = jax.tree.map(
        lambda first, rest: jnp.concatenate([jnp.asarray(first, rest.dtype)[None], rest]),
        state,
        states,
    )
    return states, steps, alive


def render(
    env_name: str,
    act: Callable,
    key: jax.Array,
    path: str | Path,
    env_overrides: dict[str, Any] | None = None,
) -> Path:
    """Roll out one episode of ``act`` on ``env_name`` and draw it to ``path``.

    The suffix is the drawing's (``.gif``, ``.html`` or ``.png``); a ``path`` with
    another suffix gets the right one instead. Returns the path written.
    """
    wrapped, params = envs.make(env_name, autoreset=False, **(env_overrides or {}))
    env, _ = envs.make(env_name, raw=True, **(env_overrides or {}))
    limit = wrapped.find(envs.wrappers.TimeLimit)
    max_steps = limit.max_episode_steps if limit is not None else 1000
    states, steps, alive = jax.jit(episode, static_argnums=(0, 2, 4))(
        env, params, act, key, max_steps
    )
    length = int(np.asarray(alive).sum())
    brax = env_name.startswith("brax:")
    grid = isinstance(env, GridWorld | RandomMaze)
    path = Path(path).with_suffix(".gif" if grid else ".html" if brax else ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    infos = jax.tree.map(lambda x: np.asarray(x)[:length], steps.info)
    if grid:
        frames = jax.jit(jax.vmap(lambda s: env.render(s, params)))(states)
        save_gif(np.asarray(frames)[: length + 1], path)
    elif isinstance(env, Inventory):
        plot_episode(infos, path)
    elif isinstance(env, Recommendation):
        title = f"{env_name}: one user, {length} steps"
        plot_user(infos, path, leave_threshold=float(params.leave_threshold), title=title)
    elif brax:
        from brax.io import html

        pipeline = states.pipeline_state
        frames = [jax.tree.map(lambda x, t=t: x[t], pipeline) for t in range(length + 1)]
        path.write_text(html.render(env.brax_env(params.backend).sys, frames))
    else:
        plot_rewards(np.asarray(steps.reward)[:length], f"{env_name}: one episode", path)
    return path


def plot_rewards(rewards: np.ndarray, title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    t = np.arange(1, len(rewards) + 1)
    ax.plot(t, rewards, label="reward")
    ax.plot(t, np.cumsum(rewards), label="return so far")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
