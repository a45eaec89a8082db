"""Wrappers: time limits, auto-reset, episode statistics, normalisation, action
and observation transforms, and runtime checks.

All wrappers keep the unbatched, pure API; batch with ``jax.vmap``. The order
``make`` uses for training is::

    EpisodeStatistics(AutoReset(TimeLimit(env)))

so the statistics and the auto-reset see the time-limit truncation, and
``info["final_obs"]`` holds the last observation of every finished episode
(terminated or truncated), which agents use to bootstrap on truncation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from envs import running_stats
from envs.core import Environment, TimeStep, Wrapper
from envs.spaces import Box, Discrete, Space


def _select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class TimeLimitState(NamedTuple):
    env_state: Any
    time: jax.Array


class TimeLimit(Wrapper):
    """Truncate episodes after ``max_episode_steps`` steps.

    Sets ``truncated`` (never ``terminated``); a step that both terminates and
    hits the limit counts as terminated only, since no bootstrap is owed.
    """

    def __init__(self, env: Environment, max_episode_steps: int):
        if int(max_episode_steps) < 1:
            raise ValueError(
                f"TimeLimit: max_episode_steps={max_episode_steps} is not allowed; it must be >= 1"
            )
        super().__init__(env)
        self.max_episode_steps = int(max_episode_steps)

    def inner_state(self, state):
        return state.env_state

    def reset(self, key, params):
        env_state, ts = self.env.reset(key, params)
        return TimeLimitState(env_state, jnp.zeros((), jnp.int32)), ts

    def step(self, key, state, action, params):
        env_state, ts = self.env.step(key, state.env_state, action, params)
        time = state.time + 1
        truncated = (ts.truncated | (time >= self.max_episode_steps)) & ~ts.terminated
        return TimeLimitState(env_state, time), ts._replace(truncated=truncated)


class AutoReset(Wrapper):
    """Reset when an episode ends; the returned obs is the new episode's first.

    The last observation of the finished episode is ``info["final_obs"]`` (after
    ``reset`` it equals ``obs``, so ``info`` keeps one structure). Under ``vmap``
    the reset is computed every step and selected, as with every JAX auto-reset.
    """

    def reset(self, key, params):
        state, ts = self.env.reset(key, params)
        return state, ts._replace(info={**ts.info, "final_obs": ts.obs})

    def step(self, key, state, action, params):
        step_key, reset_key = jax.random.split(key)
        state_st, ts_st = self.env.step(step_key, state, action, params)
        state_re, ts_re = self.env.reset(reset_key, params)
        done = ts_st.done
        state = _select(done, state_re, state_st)
        obs = _select(done, ts_re.obs, ts_st.obs)
        return state, ts_st._replace(obs=obs, info={**ts_st.info, "final_obs": ts_st.obs})


class EpisodeStatisticsState(NamedTuple):
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Track undiscounted returns and lengths for logging.

    Adds ``info["episode_return"]`` and ``info["episode_length"]`` (the finished
    episode's totals on a step that ends one, the running totals otherwise) and
    ``info["episode_done"]``; average the first two where the third is true.
    """

    def inner_state(self, state):
        return state.env_state

    def reset(self, key, params):
        env_state, ts = self.env.reset(key, params)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        info = {
            **ts.info,
            "episode_return": zero_f,
            "episode_length": zero_i,
            "episode_done": jnp.zeros((), jnp.bool_),
        }
        return EpisodeStatisticsState(env_state, zero_f, zero_i), ts._replace(info=info)

    def step(self, key, state, action, params):
        env_state, ts = self.env.step(key, state.env_state, action, params)
        ret = state.episode_return + ts.reward
        length = state.episode_length + 1
        done = ts.done
        info = {**ts.info, "episode_return": ret, "episode_length": length, "episode_done": done}
        new_state = EpisodeStatisticsState(
            env_state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length)
        )
        return new_state, ts._replace(info=info)


class NormalizeObservationState(NamedTuple):
    env_state: Any
    stats: running_stats.RunningStats
    frozen: jax.Array


class NormalizeObservation(Wrapper):
    """Normalise float observations by running mean and variance.

    The statistics live in the state of each (unbatched) environment; call
    ``freeze(state)`` to stop updating them, e.g. for evaluation. Statistics
    shared across a whole batch of environments belong in the agent
    (``jaxrl``), which uses the same ``envs.running_stats``.
    ``info["final_obs"]`` is normalised with the same statistics.
    """

    def __init__(self, env: Environment, clip: float = 10.0):
        super().__init__(env)
        self.clip = float(clip)

    def _normalize(self, stats, ts: TimeStep) -> TimeStep:
        info = dict(ts.info)
        if "final_obs" in info:
            info["final_obs"] = running_stats.normalize(stats, info["final_obs"], self.clip)
        return ts._replace(obs=running_stats.normalize(stats, ts.obs, self.clip), info=info)

    def inner_state(self, state):
        return state.env_state

    def reset(self, key, params):
        env_state, ts = self.env.reset(key, params)
        shape = self.env.observation_space(params).shape
        stats = running_stats.update(running_stats.init(shape), ts.obs)
        state = NormalizeObservationState(env_state, stats, jnp.zeros((), jnp.bool_))
        return state, self._normalize(stats, ts)

    def step(self, key, state, action, params):
        env_state, ts = self.env.step(key, state.env_state, action, params)
        updated = running_stats.update(state.stats, ts.obs)
        stats = _select(state.frozen, state.stats, updated)
        return state._replace(env_state=env_state, stats=stats), self._normalize(stats, ts)

    def observation_space(self, params):
        shape = self.env.observation_space(params).shape
        return Box(-self.clip, self.clip, shape, jnp.float32)

    @staticmethod
    def freeze(state: NormalizeObservationState) -> NormalizeObservationState:
        """Stop updating the statistics (they are still applied)."""
        return state._replace(frozen=jnp.ones_like(state.frozen))


def _box(space: Space, wrapper: str) -> Box:
    if not isinstance(space, Box) or not jnp.issubdtype(space.dtype, jnp.floating):
        raise ValueError(f"{wrapper} needs a continuous (float Box) action space, got {space!r}")
    return space


class ClipAction(Wrapper):
    """Clip continuous actions to the action space's bounds before stepping."""

    def step(self, key, state, action, params):
        space = _box(self.env.action_space(params), "ClipAction")
        return self.env.step(key, state, jnp.clip(action, space.low, space.high), params)


class RescaleAction(Wrapper):
    """Let the agent act in ``[low, high]`` (default ``[-1, 1]``); map affinely to the env's box.

    Actions outside ``[low, high]`` are clipped first.
    """

    def __init__(self, env: Environment, low: float = -1.0, high: float = 1.0):
        super().__init__(env)
        if not low < high:
            raise ValueError(f"RescaleAction: low={low} must be < high={high}")
        self.low, self.high = float(low), float(high)

    def inner_action(self, action: jax.Array, params) -> jax.Array:
        """The wrapped env's action for ``action`` in ``[low, high]`` (clipped first)."""
        space = _box(self.env.action_space(params), "RescaleAction")
        fraction = (jnp.clip(action, self.low, self.high) - self.low) / (self.high - self.low)
        return space.low + fraction * (space.high - space.low)

    def step(self, key, state, action, params):
        return self.env.step(key, state, self.inner_action(action, params), params)

    def action_space(self, params):
        space = _box(self.env.action_space(params), "RescaleAction")
        return Box(self.low, self.high, space.shape, space.dtype)


class FlattenObservation(Wrapper):
    """Ravel array observations to float32 vectors (e.g. grid images for an MLP)."""

    @staticmethod
    def _flat(ts: TimeStep) -> TimeStep:
        info = dict(ts.info)
        if "final_obs" in info:
            info["final_obs"] = jnp.ravel(info["final_obs"]).astype(jnp.float32)
        return ts._replace(obs=jnp.ravel(ts.obs).astype(jnp.float32), info=info)

    def reset(self, key, params):
        state, ts = self.env.reset(key, params)
        return state, self._flat(ts)

    def step(self, key, state, action, params):
        state, ts = self.env.step(key, state, action, params)
        return state, self._flat(ts)

    def observation_space(self, params):
        space = self.env.observation_space(params)
        size = 1
        for dim in space.shape:
            size *= dim
        if isinstance(space, Box) and jnp.issubdtype(space.dtype, jnp.floating):
            return Box(space.low.ravel(), space.high.ravel(), (size,), jnp.float32)
        return Box(-jnp.inf, jnp.inf, (size,), jnp.float32)


class DebugChecks(Wrapper):
    """Check actions, observations and rewards at run time, inside compiled code.

    ``via="callback"`` (the default): a failed check raises ``ValueError`` on the host
    through ``jax.debug.callback``, so it works as it is under ``jit``, ``scan`` and
    ``vmap`` (over seeds or env params, as training runs are), with nothing to wrap;
    the error surfaces as a ``JaxRuntimeError`` whose text names the env, the quantity
    and the value. It costs a host callback per step: a debugging tool, not for timed
    runs. ``via="checkify"`` emits ``checkify.check`` instead, for code you run under
    ``checkify.checkify`` to get the errors as values::

        err, out = jax.jit(checkify.checkify(rollout))(key)
        err.throw()   # ValueError naming the env, the quantity and the value

    (outside ``checkify.checkify`` such checks do not trace, and ``checkify`` does not
    compose with ``vmap`` of a whole training run; use the default there). Out-of-range
    discrete actions, which environments silently clip, are reported here.
    """

    def __init__(self, env: Environment, via: str = "callback"):
        super().__init__(env)
        if via not in ("callback", "checkify"):
            raise ValueError(
                f"DebugChecks via={via!r} is not allowed; it must be 'callback' or 'checkify'"
            )
        self.via = via

    def _check(self, ok: jax.Array, message: str, value: jax.Array) -> None:
        """Report ``message.format(value=...)`` where ``ok`` is False."""
        if self.via == "checkify":
            checkify.check(ok, message, value=value)
            return

        def report(ok, value):
            ok, value = np.asarray(ok), np.asarray(value)
            if not ok.all():
                bad = value if ok.ndim == 0 or value.ndim == 0 else value[~ok]
                raise ValueError(message.format(value=bad))

        jax.debug.callback(report, ok, value)

    def _check_obs(self, ts: TimeStep, params, where: str) -> None:
        space = self.env.observation_space(params)
        obs = jnp.asarray(ts.obs)
        if jnp.issubdtype(obs.dtype, jnp.floating):
            nan = jnp.isnan(obs).any()
            self._check(~nan, f"{self.name}: NaN in the observation after {where}", nan)
        self._check(
            space.contains(obs),
            f"{self.name}: observation after {where} is outside {space!r}: {{value}}",
            obs,
        )

    def reset(self, key, params):
        state, ts = self.env.reset(key, params)
        self._check_obs(ts, params, "reset")
        return state, ts

    def step(self, key, state, action, params):
        space = self.env.action_space(params)
        action = jnp.asarray(action)
        bounds = f"[0, {space.n})" if isinstance(space, Discrete) else f"{space!r} bounds"
        self._check(
            space.contains(action),
            f"{self.name}: action {{value}} is outside the action space; allowed {bounds}",
            action,
        )
        state, ts = self.env.step(key, state, action, params)
        self._check(
            jnp.isfinite(ts.reward), f"{self.name}: reward {{value}} is not finite", ts.reward
        )
        self._check_obs(ts, params, "step")
        return state, ts
