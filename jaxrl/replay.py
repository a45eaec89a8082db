"""Experience replay for the off-policy agents, on flashbax (Toledo et al. 2023):
uniform or prioritised (Schaul et al. 2016) sampling of sequences of consecutive
steps of one env.

Each stored step is an ``Experience``: the observation, action, reward, both
episode flags and the pre-reset next observation (``info["final_obs"]``).
Keeping ``next_obs`` (rather than pairing each step with the following stored
observation, flashbax's flat buffer) costs one more observation per step and is
what makes truncation exact: the step where a time limit cut the episode still
knows the observation to bootstrap from, and sequences that run across an
episode end are cut there by ``returns.n_step_returns``.

The buffer is a flashbax trajectory buffer with one row per env
(``add_batch_size = num_envs``) and ``buffer_size // num_envs`` steps per row;
``sequence_length`` consecutive steps are sampled (1 for one-step targets).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flashbax as fbx
import jax
import jax.numpy as jnp

from jaxrl import rollout
from jaxrl.rollout import Transition


class Experience(NamedTuple):
    obs: Any
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: Any


def experience(traj: Transition) -> Experience:
    """The stored part of a time-major rollout ``[T, N, ...]``, batch-major ``[N, T, ...]``
    as flashbax adds it."""
    steps = Experience(
        traj.obs, traj.action, traj.reward, traj.terminated, traj.truncated, traj.next_obs
    )
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)


def example_step(venv: Any, env_params: Any) -> Experience:
    """A zero ``Experience`` shaped like one step of ``venv``'s env."""
    obs_space, action_space = venv.observation_space(env_params), venv.action_space(env_params)
    obs = jnp.zeros(obs_space.shape, jnp.float32)
    action = jnp.zeros(action_space.shape, action_space.dtype)
    flag = jnp.zeros((), jnp.bool_)
    return Experience(obs, action, jnp.float32(0.0), flag, flag, obs)


class Replay:
    """A flashbax trajectory buffer, uniform or prioritised, with one row per env.

    Args (all static): ``num_envs`` rows; ``capacity`` transitions in all;
    ``batch_size`` sequences per sample, each ``sequence_length`` consecutive
    steps of one env; ``prioritised`` with exponent ``priority_exponent``.

    flashbax broadcasts ranks implicitly, so its calls run under
    ``jax.numpy_rank_promotion("allow")`` whatever the caller's setting.
    """

    def __init__(
        self,
        num_envs: int,
        capacity: int,
        batch_size: int,
        sequence_length: int = 1,
        prioritised: bool = False,
        priority_exponent: float = 0.6,
    ):
        self.prioritised = prioritised
        kwargs = dict(
            add_batch_size=num_envs,
            sample_batch_size=batch_size,
            sample_sequence_length=sequence_length,
            period=1,
            min_length_time_axis=sequence_length,
            max_length_time_axis=capacity // num_envs,
        )
        if prioritised:
            self.buffer = fbx.make_prioritised_trajectory_buffer(
                **kwargs, priority_exponent=priority_exponent
            )
        else:
            self.buffer = fbx.make_trajectory_buffer(**kwargs)

    def init(self, example: Experience) -> Any:
        """An empty buffer state for steps shaped like ``example`` (one step, one env;
        ``example_step`` makes it for an env)."""
        with jax.numpy_rank_promotion("allow"):
            return self.buffer.init(example)

    def add(self, state: Any, traj: Transition) -> Any:
        """Add a time-major rollout ``[T, num_envs, ...]``."""
        with jax.numpy_rank_promotion("allow"):
            return self.buffer.add(state, experience(traj))

    def state_spec(self, example: Experience, split: Any, shared: Any) -> Any:
        """Partition specs of a (uniform) buffer state whose env rows are split over
        devices: the stored steps ``split``, the write position and flags ``shared``."""
        like = jax.eval_shape(self.init, example)
        spec = jax.tree.map(lambda _: shared, like)
        return spec.replace(experience=jax.tree.map(lambda _: split, like.experience))

    def sample(self, state: Any, key: jax.Array) -> Any:
        """Sequences ``experience [batch_size, sequence_length, ...]`` (plus ``indices``
        and ``probabilities`` if prioritised)."""
        with jax.numpy_rank_promotion("allow"):
            return self.buffer.sample(state, key)

    def importance_weights(self, sample: Any, beta: jax.Array) -> jax.Array:
        """Prioritised replay's correction ``(1 / P_i)^beta``, scaled so the largest in
        the minibatch is 1 (Schaul et al. 2016); ones for uniform sampling."""
        if not self.prioritised:
            return jnp.ones(jax.tree.leaves(sample.experience)[0].shape[:1], jnp.float32)
        weights = jnp.power(jnp.maximum(sample.probabilities, 1e-12), -beta)
        return weights / weights.max()

    def update_priorities(self, state: Any, sample: Any, td: jax.Array) -> Any:
        """New priorities ``|td| + 1e-6`` for the sampled items (no-op if uniform)."""
        if not self.prioritised:
            return state
        with jax.numpy_rank_promotion("allow"):
            return self.buffer.set_priorities(state, sample.indices, jnp.abs(td) + 1e-6)


def gradient_steps(
    started: jax.Array,
    gradient_step: Any,
    carry: Any,
    key: jax.Array,
    num_steps: int,
    update: jax.Array,
) -> tuple[Any, dict[str, jax.Array]]:
    """The learning phase of update number ``update``, written once for every replay agent.

    If ``started``, ``num_steps`` calls of ``gradient_step(carry, key, step) ->
    (carry, stats)`` in a ``lax.scan``, with their stats averaged; ``step =
    update * num_steps + i`` counts gradient steps over the run (TD3 delays its
    actor by it). Otherwise (still filling the buffer) ``carry`` unchanged and
    zero stats of the same shapes, so the metrics keep one layout. ``started``
    and ``step`` derive from the unbatched update index, so under ``vmap`` over
    seeds or hyperparameters the conds on them stay real branches.
    """
    steps = update * num_steps + jnp.arange(num_steps)

    def learn():
        keys = jax.random.split(key, num_steps)
        body = lambda c, xs: gradient_step(c, *xs)
        carry_out, stats = jax.lax.scan(body, carry, (keys, steps))
        return carry_out, jax.tree.map(lambda x: x.mean(0), stats)

    def wait():
        shapes = jax.eval_shape(gradient_step, carry, key, steps[0])[1]
        return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    return jax.lax.cond(started, learn, wait)


class OffPolicyLoop:
    """One update of an actor-critic that learns from replay (SAC, TD3), written once:

    1. every env takes ``config.rollout_len`` steps with ``act``, added to the buffer;
    2. from update ``config.first_learning_update`` on, ``config.gradient_steps``
       calls of ``learn_step(learner, batch, key, step) -> (learner, stats)`` on
       minibatches of single transitions ``batch [B, ...]`` sampled uniformly.

    With ``config.normalize_obs`` (statistics in the env carry, see
    ``rollout.init_carry``) the buffer holds raw observations and every sampled
    batch is normalised with the newest statistics, as brax.training's SAC does:
    normalising before storing would leave old transitions on a stale scale.

    Args (static): the batched env and its params, the ``Replay`` (sequences of
    one step) and the agent's ``ReplayConfig``.
    """

    def __init__(self, venv: Any, env_params: Any, buffer: Replay, config: Any):
        self.venv, self.env_params, self.buffer, self.config = venv, env_params, buffer, config

    def started(self, update: jax.Array) -> jax.Array:
        """Whether update ``update`` learns (and its actions come from the policy)."""
        return update >= self.config.first_learning_update

    def update(
        self,
        act: Any,
        learn_step: Any,
        learner: Any,
        env_carry: Any,
        buffer_state: Any,
        key: jax.Array,
        update: jax.Array,
    ) -> tuple[Any, Any, Any, dict[str, jax.Array]]:
        """``(learner, env_carry, buffer_state, metrics)`` after update number ``update``;
        ``act`` is a ``rollout.ActFn``."""
        rollout_key, learn_key = jax.random.split(key)
        env_carry, _, traj = rollout.collect(
            self.venv, self.env_params, act, rollout_key, env_carry, self.config.rollout_len,
            raw_obs=True,
        )  # fmt: skip
        buffer_state = self.buffer.add(buffer_state, traj)
        norm = env_carry.norm

        def gradient_step(learner, key, step):
            sample_key, step_key = jax.random.split(key)
            sample = self.buffer.sample(buffer_state, sample_key).experience
            batch = jax.tree.map(lambda x: x[:, 0], sample)  # sequences of one step
            batch = batch._replace(
                obs=rollout.normalize_obs(norm, batch.obs),
                next_obs=rollout.normalize_obs(norm, batch.next_obs),
            )
            return learn_step(learner, batch, step_key, step)

        learner, stats = gradient_steps(
            self.started(update), gradient_step, learner, learn_key,
            self.config.gradient_steps, update,
        )  # fmt: skip
        return learner, env_carry, buffer_state, stats | rollout.episode_metrics(traj)
