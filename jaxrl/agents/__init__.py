"""Agents: one module per algorithm, each exporting one record, ``AGENT``.

An ``Agent`` says everything the command line, the scripts, the tests, export and
the presets need to know about an algorithm: its name, its config and
hyperparameter classes, ``make_train`` and ``make_policy``, the env it trains on
by default and what it supports (``Capabilities``). They all read the records
through this registry::

    from jaxrl import agents

    ppo = agents.get("ppo")            # imports jaxrl.agents.ppo, returns ppo.AGENT
    trainer = ppo.make_train(ppo.Config(total_steps=100_000), env, env_params)
    [agents.get(name).description for name in agents.registered()]

``REGISTRY`` maps each name to where its record lives, so that a command imports
only the agent it runs (importing all of them costs about 0.3-0.5 s of start-up);
adding an agent is its module, one line here and one row in the contract test
(``tests/test_agent_contract.py``, which fails for a registered agent without one).
Behaviour cloning is not here: it learns from an expert policy that the user
supplies (``jaxrl.agents.bc.make_train(config, env, env_params, expert)``), so the
registry's ``make_train(config, env, env_params)`` does not describe it.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

REGISTRY: dict[str, str] = {
    "ppo": "jaxrl.agents.ppo:AGENT",
    "a2c": "jaxrl.agents.a2c:AGENT",
    "reinforce": "jaxrl.agents.reinforce:AGENT",
    "trpo": "jaxrl.agents.trpo:AGENT",
    "dqn": "jaxrl.agents.dqn:AGENT",
    "pqn": "jaxrl.agents.pqn:AGENT",
    "sarsa": "jaxrl.agents.pqn:SARSA",
    "sac": "jaxrl.agents.sac:AGENT",
    "td3": "jaxrl.agents.td3:AGENT",
    "cem": "jaxrl.agents.cem:AGENT",
    "q_learning": "jaxrl.agents.tabular:AGENT",
}
"""Every agent's name and where its record lives (``module:attribute``)."""


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What an agent supports (``Agent.capabilities``); the contract test checks the
    action kinds, the others follow from its config class."""

    discrete: bool
    """Trains on discrete action spaces (else refused before compiling)."""
    continuous: bool
    """Trains on continuous (Box) action spaces (else refused before compiling)."""
    recurrent: bool
    """Has a recurrent policy option (``config.gru_size > 0``)."""
    split_envs: bool
    """Splits each run's envs over devices (``config.num_devices``)."""
    replay: bool
    """Learns from a replay buffer (``config.buffer_size``)."""


@dataclasses.dataclass(frozen=True)
class Agent:
    """One algorithm, as everything outside its module sees it."""

    name: str
    """Its name on the command line (``jaxrl train NAME``) and in run directories."""
    description: str
    """A few words for ``jaxrl --help``."""
    Config: type
    """The frozen config dataclass (static sizes and switches)."""
    HParams: type
    """The traced hyperparameters (``jaxrl.hparams.HParams``)."""
    make_train: Callable[..., Any]
    """``make_train(config, env, env_params) -> Trainer``."""
    make_policy: Callable[..., Any]
    """``make_policy(config, env, env_params, state, deterministic) -> act``."""
    make_value: Callable[..., Any] | None = None
    """``make_value(config, env, env_params, state) -> value(obs [N, ...])``: V(s) [N]
    for the actor-critics, Q(s, .) [N, num_actions] for the Q-learners, observation
    statistics applied; None where the agent has none to give (SAC and TD3 learn
    Q(s, a) of continuous actions, CEM no value at all, tabular agents a table:
    ``state.q``)."""
    discrete: bool = True
    """Trains on discrete action spaces (else refused before compiling)."""
    continuous: bool = True
    """Trains on continuous (Box) action spaces (else refused before compiling)."""
    default_env: str = "gymnax:CartPole-v1"
    """The env ``jaxrl train NAME`` trains on without ``--env``."""

    @property
    def capabilities(self) -> Capabilities:
        from jaxrl.config import ReplayConfig, SplitEnvs

        fields = {f.name for f in dataclasses.fields(self.Config)}
        return Capabilities(
            discrete=self.discrete,
            continuous=self.continuous,
            recurrent="gru_size" in fields,
            split_envs=issubclass(self.Config, SplitEnvs),
            replay=issubclass(self.Config, ReplayConfig),
        )

    def recurrent(self, config: Any) -> bool:
        """Whether ``config`` makes a recurrent policy (one that carries a state)."""
        return getattr(config, "gru_size", 0) > 0


def get(name: str) -> Agent:
    """The record of the agent called ``name`` (imports its module)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown agent {name!r}; allowed: {', '.join(sorted(REGISTRY))}")
    module, attribute = REGISTRY[name].split(":")
    agent = getattr(importlib.import_module(module), attribute)
    if agent.name != name:  # pragma: no cover - a registry typo
        raise RuntimeError(f"REGISTRY[{name!r}] points at agent {agent.name!r}")
    return agent


def registered() -> list[str]:
    """Every registered agent's name, without importing any."""
    return list(REGISTRY)
