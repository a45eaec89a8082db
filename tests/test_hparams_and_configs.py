"""Hyperparameters (jaxrl.hparams): each field declared once with its range, every
class checked when built (issue 21; issue 19's Python route), pytrees that vmap.
Configs: one cooperative chain of checks (issue 21)."""

import dataclasses
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import bandits
from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl.agents import a2c, bc, cem, dqn, ppo, pqn, reinforce, sac, tabular, td3, trpo

CLASSES = [
    cls
    for module in (a2c, bc, cem, dqn, ppo, pqn, reinforce, sac, tabular, td3, trpo, bandits)
    for cls in vars(module).values()
    if inspect.isclass(cls) and issubclass(cls, H.HParams) and cls.__module__ == module.__name__
]

SAME_NAME_OTHER_MEANING = {"alpha"}
"""SAC's temperature and LinUCB's bonus width: two hyperparameters, one name."""


def test_every_agent_and_bandit_algorithm_has_its_class():
    names = {cls.__name__ for cls in CLASSES}
    assert len(CLASSES) == 18  # 11 agent modules, 6 bandit algorithms and their Ridge
    assert {"PPOHParams", "DQNHParams", "TRPOHParams", "LinUCBHParams"} <= names


def test_each_range_is_declared_once():
    """``lr`` was declared 9 times, ``gamma`` 9 and ``max_grad_norm`` 7, with their
    ranges in a table far away; now a name's range lives in one class."""
    declared: dict[str, list[str]] = {}
    for block in {base for cls in CLASSES for base in cls.__mro__ if base is not object}:
        for name, field in vars(block).get("__dataclass_fields__", {}).items():
            if "range" in field.metadata and name in vars(block).get("__annotations__", {}):
                declared.setdefault(name, []).append(block.__name__)
    twice = {name: owners for name, owners in declared.items() if len(owners) > 1}
    assert set(twice) == SAME_NAME_OTHER_MEANING, twice
    for shared in ("lr", "gamma", "max_grad_norm", "gae_lambda", "ent_coef", "tau"):
        assert len(declared[shared]) == 1


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_defaults_are_allowed_and_every_bad_value_is_refused_naming_it(cls):
    default = cls()
    assert default.validate() is default
    for name in cls.fields():
        allowed = cls._ranges[name]
        bad = [math.nan, math.inf, "abc", None, True, [0.1, "x"]]
        if allowed.low is not None:
            bad.append(allowed.low - 1.0 if not allowed.low_open else allowed.low)
        if allowed.high is not None:
            bad.append(allowed.high + 1.0 if not allowed.high_open else allowed.high)
        for value in bad:
            with pytest.raises(ValueError, match=rf"{cls.__name__}\.{name}=.* is not allowed"):
                cls(**{name: value})
            with pytest.raises(ValueError, match=rf"{cls.__name__}\.{name}="):
                default.replace(**{name: value})


def test_rows_of_a_sweep_are_checked_elementwise_and_unknown_names_refused():
    rows = jax.tree.map(lambda x: np.full((3,), x), ppo.PPOHParams())
    assert rows.replace(lr=np.array([1e-4, 3e-4, 1e-3])).lr.shape == (3,)
    with pytest.raises(ValueError, match=r"PPOHParams\.gamma=\[1\.5\] is not allowed"):
        rows.replace(gamma=np.array([0.9, 1.5, 0.99]))
    with pytest.raises(ValueError, match="PPOHParams has no field.* lrr; allowed: lr, gamma"):
        rows.replace(lrr=1e-3)
    with pytest.raises(TypeError):
        ppo.PPOHParams(2.5e-4)  # keyword-only: field order is not an API


def test_pytree_rebuilds_do_not_check_and_traced_values_pass_when_built():
    """Under tree.map, vmap and jit the leaves are placeholders, zeros or tracers:
    a rebuild never runs the checks (only what the user builds is checked)."""
    hp = sac.SACHParams()
    zeros = jax.tree.map(jnp.zeros_like, hp)  # lr=0 is not allowed, but this is a rebuild
    assert type(zeros) is sac.SACHParams and float(zeros.lr) == 0.0
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(hp)]
    assert paths == [".lr", ".gamma", ".tau", ".alpha", ".reward_scale"]
    doubled = jax.jit(jax.vmap(lambda h: jax.tree.map(lambda x: 2 * x, h)))(
        jax.tree.map(lambda x: jnp.full((2,), x), hp)
    )
    assert np.allclose(doubled.gamma, 1.98)  # out of range, but computed, not built
    built = jax.jit(lambda lr: sac.SACHParams(lr=lr).lr * 2)(1e-3)
    assert np.isclose(built, 2e-3)


def test_fields_read_in_source_order_in_repr_pytree_and_help():
    assert dqn.DQNHParams.fields() == (
        "lr", "gamma", "tau", "eps_start", "eps_end", "eps_decay_fraction",
        "max_grad_norm", "huber_delta", "priority_beta",
    )  # fmt: skip
    assert [f.name for f in dataclasses.fields(dqn.DQNHParams)] == list(dqn.DQNHParams.fields())
    assert repr(ppo.PPOHParams()).startswith("PPOHParams(lr=0.00025, gamma=0.99, gae_lambda")
    # An agent changes a shared field's default without redeclaring its range.
    assert dqn.DQNHParams().max_grad_norm == 10.0 and ppo.PPOHParams().max_grad_norm == 0.5
    assert dqn.DQNHParams._ranges["max_grad_norm"] == H.POSITIVE


def test_a_field_without_a_range_is_an_error_in_the_class():
    with pytest.raises(TypeError, match=r"Bad\.beta has no range; declare it with hparam"):

        @H.hparams
        class Bad(H.Discount):
            beta: float = 0.5


def test_config_checks_are_one_cooperative_chain_naming_the_class_built():
    """Every level checks its own fields, the most basic first, and a subclass of an
    agent's config is named in the errors of every level (they said "PPOConfig")."""

    @dataclasses.dataclass(frozen=True)
    class MyPPOConfig(ppo.PPOConfig):
        warmup: int = 1

        def check(self) -> None:
            super().check()
            C.check_positive(type(self).__name__, warmup=self.warmup)

    MyPPOConfig()
    errors = {
        "num_envs": dict(num_envs=0),  # StepsConfig
        "num_devices": dict(num_devices=3),  # SplitEnvs
        "activation": dict(activation="sigmoid"),  # AgentConfig
        "num_minibatches": dict(num_minibatches=3),  # PPOConfig
        "warmup": dict(warmup=0),  # the subclass
    }
    for field, values in errors.items():
        with pytest.raises(ValueError, match=rf"^MyPPOConfig\.{field}="):
            MyPPOConfig(**values)
    # The most basic level first: num_envs=0 is reported, not what it breaks below.
    with pytest.raises(ValueError, match=r"MyPPOConfig\.num_envs=0"):
        MyPPOConfig(num_envs=0, num_devices=3, warmup=0)
    with pytest.raises(ValueError, match=r"SACConfig\.num_critics=0"):
        sac.SACConfig(num_critics=0)  # ActorCriticReplayConfig, below ReplayConfig
    with pytest.raises(ValueError, match=r"DQNConfig\.buffer_size=10 is smaller"):
        dqn.DQNConfig(buffer_size=10, minibatch_size=20)  # ReplayConfig
