"""Traced hyperparameters: frozen dataclasses whose fields carry their doc and
their allowed range, checked when they are built.

Every agent's hyperparameters (``PPOHParams``, ``DQNHParams``, ...) subclass
``HParams`` and the blocks below, so that a field shared by several agents
(``lr``, ``gamma``, ``max_grad_norm``, ...) is declared, documented and given
its range once; an agent redeclares a field only to change its default::

    @hparams
    class A2CHParams(LearningRate, Discount, GAE, ActorCriticLoss, GradClip):
        lr: float = 2e-3

They are pytrees, so ``jax.vmap`` over a batch of them sweeps in one compile
(``jaxrl.sweep``), and they are keyword-only (``PPOHParams(lr=1e-3)``).

Built with concrete values (numbers or arrays: a batch of rows), every field is
checked at once, with a ``ValueError`` naming the class, the field, the value
and the allowed range (NaN and infinities are never allowed), so that
``jax.jit(jax.vmap(train))(keys, PPOHParams(lr=-1e-3))`` fails before anything
is traced. Traced values (hyperparameters built inside a jitted function) pass;
``HParams.validate`` also checks those, when the program runs.

Why not ``flax.struct.dataclass`` (as env params) or ``chex.dataclass``: their
pytree rebuild calls ``__init__``, so the checks would run again on every
``tree.map`` or ``vmap`` of the hyperparameters, where leaves are tracers,
placeholders or axis specs (``in_axes``); here a rebuild skips ``__init__``, so
only what the user builds is checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple, TypeVar

import jax
import numpy as np

from envs._validation import check_kind, check_range


class Range(NamedTuple):
    """An interval of allowed values; None: unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, owner: str, name: str, value: Any) -> None:
        check_range(
            owner, name, value, self.low, self.high,
            low_open=self.low_open, high_open=self.high_open,
        )  # fmt: skip


UNIT = Range(0, 1)
"""[0, 1]."""
POSITIVE = Range(0, None, low_open=True)
"""(0, inf)."""
NON_NEGATIVE = Range(0, None)
"""[0, inf)."""


def hparam(default: float, allowed: Range) -> Any:
    """A hyperparameter field: its default and its allowed range."""
    return dataclasses.field(default=default, metadata={"range": allowed})


H = TypeVar("H", bound="HParams")

_UNCHECKED = contextvars.ContextVar("unchecked", default=False)


@contextlib.contextmanager
def unchecked() -> Iterator[None]:
    """Build hyperparameters without checking them, for a parser that checks them
    itself afterwards (``validate``) and reports a bad value its own way: the command
    line's one-line error rather than the flag parser's."""
    token = _UNCHECKED.set(True)
    try:
        yield
    finally:
        _UNCHECKED.reset(token)


def hparams(cls: type[H]) -> type[H]:
    """Make ``cls`` (a subclass of ``HParams``) a frozen, keyword-only dataclass and a
    pytree. Every field must have a range (``hparam``) here or in a base class."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True, repr=False)(cls)
    # Fields in the order they read in the source: the bases' from left to right,
    # then the class's own (a dataclass lists the last base's first).
    inherited = (n for base in cls.__mro__[1:] for n in getattr(base, "__dataclass_fields__", {}))
    order = list(dict.fromkeys(inherited))
    order += [n for n in cls.__dataclass_fields__ if n not in order]
    cls.__dataclass_fields__ = {n: cls.__dataclass_fields__[n] for n in order}
    names = tuple(order)
    ranges = {}
    for name in names:
        declared = (
            base.__dataclass_fields__[name].metadata.get("range")
            for base in cls.__mro__
            if name in getattr(base, "__dataclass_fields__", {})
        )
        ranges[name] = next((r for r in declared if r is not None), None)
        if ranges[name] is None:
            raise TypeError(f"{cls.__name__}.{name} has no range; declare it with hparam()")
    cls._ranges = ranges

    def flatten_with_keys(hp):
        return [(jax.tree_util.GetAttrKey(n), getattr(hp, n)) for n in names], None

    def unflatten(_, values):
        hp = object.__new__(cls)
        for name, value in zip(names, values, strict=True):
            object.__setattr__(hp, name, value)
        return hp

    jax.tree_util.register_pytree_with_keys(
        cls, flatten_with_keys, unflatten, lambda hp: ([getattr(hp, n) for n in names], None)
    )
    return cls


class HParams:
    """Base of every agent's hyperparameters (see the module docstring)."""

    _ranges: dict[str, Range] = {}

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.asdict().items())
        return f"{type(self).__name__}({fields})"

    def __post_init__(self):
        if _UNCHECKED.get():
            return
        owner = type(self).__name__
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, jax.core.Tracer):
                continue
            checked = check_kind(owner, field.name, field.default, value)
            self._ranges[field.name].check(owner, field.name, checked)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The field names."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def asdict(self) -> dict[str, Any]:
        """``{name: value}`` (values as they are: numbers, arrays or tracers)."""
        return {name: getattr(self, name) for name in self.fields()}

    def replace(self: H, **changes: Any) -> H:
        """A copy with ``changes``, checked as when built; an unknown name raises."""
        unknown = sorted(set(changes) - set(self.fields()))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(self.fields())}"
            )
        return dataclasses.replace(self, **changes)

    def validate(self: H) -> H:
        """Check every value; returns ``self``.

        Concrete values were checked when built; traced ones (hyperparameters made
        inside a jitted function) are checked by a ``jax.debug.callback`` when the
        program runs: a bad value then raises, in the first moments of the run, a
        ``JaxRuntimeError`` carrying the same ``ValueError``."""
        owner = type(self).__name__
        traced = {k: v for k, v in self.asdict().items() if isinstance(v, jax.core.Tracer)}
        ranges = self._ranges
        if traced:
            jax.debug.callback(
                lambda values: [
                    ranges[k].check(owner, k, np.asarray(v)) for k, v in values.items()
                ],
                traced,
            )
        else:
            self.__post_init__()
        return self


# The blocks shared by several agents: each field declared once.


@hparams
class LearningRate(HParams):
    lr: float = hparam(3e-4, POSITIVE)
    """Adam learning rate."""


@hparams
class GradClip(HParams):
    max_grad_norm: float = hparam(0.5, POSITIVE)
    """Global-norm gradient clip."""


@hparams
class Discount(HParams):
    gamma: float = hparam(0.99, UNIT)
    """Discount factor, in [0, 1]."""


@hparams
class GAE(HParams):
    gae_lambda: float = hparam(0.95, UNIT)
    """GAE lambda, in [0, 1] (1: Monte Carlo advantages, 0: one-step TD)."""


@hparams
class EntropyBonus(HParams):
    ent_coef: float = hparam(0.01, NON_NEGATIVE)
    """Weight of the entropy bonus."""


@hparams
class ValueLoss(HParams):
    vf_coef: float = hparam(0.5, NON_NEGATIVE)
    """Weight of the value loss."""


@hparams
class Epsilon(HParams):
    eps_start: float = hparam(1.0, UNIT)
    """Exploration rate at the start, in [0, 1]."""
    eps_end: float = hparam(0.05, UNIT)
    """Exploration rate after the decay, in [0, 1]."""


@hparams
class EpsilonSchedule(Epsilon):
    eps_decay_fraction: float = hparam(0.5, Range(0, 1, low_open=True))
    """Fraction of training over which epsilon decays linearly, in (0, 1]."""


@hparams
class SoftTargets(HParams):
    tau: float = hparam(0.005, Range(0, 1, low_open=True))
    """Polyak step of the target networks, in (0, 1] (1: copy the online ones)."""
