"""Helpers the agent test files share: training on the probe environments
(``envs/probes.py``) with the checks of what each probe teaches, a state-less toy
network for loss tests, and the CartPole run of the slow learning tests.

Actor-critics are read as (V, pi); Q-learners as (max_a Q, the greedy policy),
so the same checks serve both.

The checks take their thresholds as arguments: each agent's test file keeps its own.
Every probe run trains with ``gamma = 0.9``, which the expected values below assume.
"""

from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import envs
from jaxrl.distributions import Categorical
from jaxrl.networks import ActorCritics


class ProbeRun(NamedTuple):
    agent: ModuleType
    config: Any
    env: Any
    env_params: Any
    train: Callable  # jitted train over 2 vmapped seeds, hyperparameters shared
    keys: jax.Array  # [2] the seeds' keys
    state: Any  # leaves with a leading seed axis
    metrics: dict[str, jax.Array]  # [2, num_updates]


def train_probes(agent: ModuleType, runs: dict, hparams: NamedTuple) -> dict[Any, ProbeRun]:
    """Train each run with 2 vmapped seeds; one compile per run.

    Args:
        agent: an agent module (``make_train``, ``make_network``).
        runs: name -> (probe index, config), or (probe index, config, True) for the
            continuous-action probe. Probe-1 is cut by a time limit of 8 steps, the
            others by 100.
    """
    out = {}
    for name, (index, config, *continuous) in runs.items():
        prefix = "ContinuousProbe" if continuous and continuous[0] else "Probe"
        limit = 8 if index == 1 else 100
        env, params = envs.make(f"{prefix}-{index}", max_episode_steps=limit)
        train = jax.jit(jax.vmap(agent.make_train(config, env, params), in_axes=(0, None)))
        keys = jax.random.split(jax.random.key(index), 2)
        out[name] = ProbeRun(agent, config, env, params, train, keys, *train(keys, hparams))
    return out


def values_and_probs(run: ProbeRun, obs: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per seed: ``value [2, B]`` and action ``probs [2, B, A]`` at ``obs [B, 1]``
    (for a Q-network: ``max_a Q`` and the greedy policy; for an actor with critics,
    see ``actor_critics_values``)."""
    network = run.agent.make_network(run.config, run.env, run.env_params)
    if isinstance(network, ActorCritics):
        return actor_critics_values(network, run.state.params, obs)
    out = jax.vmap(network.apply, in_axes=(0, None))(run.state.params, obs)
    if isinstance(out, tuple):
        dist, value = out
        return np.asarray(value), np.asarray(dist.probs())
    q = np.asarray(out)
    return q.max(-1), np.eye(q.shape[-1])[q.argmax(-1)]


def actor_critics_values(network: ActorCritics, params, obs: jax.Array):
    """Per seed: the critics' value ``min_i Q_i`` under the actor and its action choice
    at ``obs [B, 1]``: discrete, ``(sum_a pi(a) min_i Q_i(s, a) [2, B], probs [2, B, A])``;
    continuous, ``(min_i Q_i(s, mode) [2, B], the mode action [2, B, dim])``."""

    def one(params):
        policy = network.actor.apply(params["actor"], obs)
        if network.critics.num_actions is not None:
            q = network.critics.apply(params["critics"], obs).min(0)
            return (policy.probs() * q).sum(-1), policy.probs()
        action = policy if isinstance(policy, jax.Array) else policy.mode()
        return network.critics.apply(params["critics"], obs, action).min(0), action

    value, action = jax.vmap(one)(params)
    return np.asarray(value), np.asarray(action)


def check_continuous_probe4_and_5_actions(run4: ProbeRun, run5: ProbeRun, atol: float) -> None:
    # ContinuousProbe-4: best action 0.5; ContinuousProbe-5: 0.5 times the obs sign.
    _, action = values_and_probs(run4, jnp.zeros((1, 1)))
    np.testing.assert_allclose(action[:, 0, 0], 0.5, atol=atol)
    _, action = values_and_probs(run5, jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(action[..., 0], [[-0.5, 0.5]] * 2, atol=atol)


def check_probe1_value(run: ProbeRun, atol: float) -> None:
    # reward 1 forever, time limit 8: V = 1 / (1 - 0.9) = 10, not ~ (1 - 0.9^8) / 0.1 = 5.7
    value, _ = values_and_probs(run, jnp.zeros((1, 1)))
    np.testing.assert_allclose(value[:, 0], 10.0, atol=atol)


def check_probe2_value(run: ProbeRun, atol: float) -> None:
    # one step, reward = obs: V(obs) = obs
    value, _ = values_and_probs(run, jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(value, [[-1.0, 1.0]] * 2, atol=atol)


def check_probe3_value(run: ProbeRun, atol: float) -> None:
    # reward 1 after two steps: V(0) = 0.9, V(1) = 1
    value, _ = values_and_probs(run, jnp.array([[0.0], [1.0]]))
    np.testing.assert_allclose(value, [[0.9, 1.0]] * 2, atol=atol)


def check_probe4_and_5_actions(run4: ProbeRun, run5: ProbeRun, min_prob: float) -> None:
    # Probe-4: action 1 is best; Probe-5: the action that matches the observation's sign.
    _, probs = values_and_probs(run4, jnp.zeros((1, 1)))
    assert (probs[:, 0, 1] > min_prob).all()
    _, probs = values_and_probs(run5, jnp.array([[-1.0], [1.0]]))
    assert (probs[:, 0, 0] > min_prob).all() and (probs[:, 1, 1] > min_prob).all()


def toy_apply(params, obs):
    """A state-less 'network': logits and value are the parameters themselves."""
    shape = obs.shape[:1]
    return Categorical(jnp.broadcast_to(params["logits"], (*shape, 2))), jnp.broadcast_to(
        params["value"], shape
    )


# numpy leaves: nothing here may start jax's backend at import, before conftest has
# set XLA_FLAGS (see conftest.fast_compile).
TOY = {"logits": np.zeros(2, np.float32), "value": np.float32(1.0)}


SEED_SET = 0
"""The learning tests' seed set (``pytest --seed-set K``; set by conftest.py)."""


def learning_keys(num_seeds: int) -> jax.Array:
    """The ``[num_seeds]`` keys a learning test trains: split from ``key(SEED_SET)``."""
    return jax.random.split(jax.random.key(SEED_SET), num_seeds)


def report(name: str, value: Any, target: str) -> None:
    """Print a learning test's measured figure (CI runs the slow tier with ``-s``, so
    its log records every figure next to its target, with the seed set)."""
    figure = np.round(np.asarray(value, float), 3)
    print(f"\n[learning] {name}: {figure} (target {target}; seed set {SEED_SET})")


def check_cartpole_final_return(
    agent: ModuleType, config: Any, hparams: Any, minimum: float, aggregate: str = "mean"
) -> None:
    """Train on CartPole-v1 with 8 vmapped seeds; the ``aggregate`` ("mean" or
    "median") over seeds of (episode return sum / episodes) over the last 5% of
    updates must reach ``minimum``."""
    env, params = envs.make("gymnax:CartPole-v1")
    train = agent.make_train(config, env, params)
    keys = learning_keys(8)
    _, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, hparams)
    tail = max(1, metrics["episodes"].shape[1] // 20)
    sums = metrics["episode_return_sum"][:, -tail:].sum(1)
    per_seed = sums / np.maximum(metrics["episodes"][:, -tail:].sum(1), 1)
    name = agent.__name__.rsplit(".", 1)[-1]
    value = {"mean": np.mean, "median": np.median}[aggregate](per_seed)
    report(f"{name} CartPole-v1 final return, {aggregate} over seeds", value, f">= {minimum}")
    assert value >= minimum, per_seed


class UnboundedActions(envs.Wrapper):
    """An env whose continuous action space is reported as ``Box(-inf, inf, (1,))``:
    for the checks that refuse policies needing finite bounds."""

    def action_space(self, params):
        return envs.spaces.Box(-jnp.inf, jnp.inf, (1,), jnp.float32)
