"""Hyperparameter search: a population trained as one vmapped call, pruned by
successive halving (Jamieson & Talwalkar 2016; the inner loop of Hyperband, Li et
al. 2017).

Every agent's hyperparameters are traced, so a population of candidates times
seeds trains as one ``jit(vmap(...))`` over (key, hyperparameter row). Round ``i``
of ``rounds`` trains every surviving candidate on to ``budgets[i]`` updates (a
geometric ladder ending at the config's whole run), scores each candidate by the
mean over its seeds of the training return of episodes that ended in the last
``SCORE_FRACTION`` of its updates so far, and keeps the best ``1 / eta``; the
survivors continue from their states (``Trainer.chunk``), nothing is trained
twice. A candidate whose numbers stop being finite (``training.faults``) scores
``-inf``. All candidates share the same seeds (common random numbers), so that
they differ by their hyperparameters, not by luck of the draw.

Candidates are drawn from a box (``Dim``: log scale for rates and coefficients)
by scrambled Sobol points (``scipy.stats.qmc``: more even coverage than uniform
draws for a few dozen points) or uniformly at random. ``DEFAULT_SPACE`` is where
each known hyperparameter is searched unless ``space`` says otherwise.

Written here rather than with a tuning library (Optuna, Ray Tune, Nevergrad):
those drive one trial per process or thread, while the point of jaxrl's
hyperparameters being traced is to train the whole population in one compiled
call; what remains (Sobol points, a ranking per round) is a few lines.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import numpy as np

import envs
from jaxrl import experiment, sweep, training

SCORE_FRACTION = 0.1
"""Share of a candidate's updates (so far) whose finished episodes score it."""


@dataclasses.dataclass(frozen=True)
class Dim:
    """One searched hyperparameter: ``low`` to ``high``, uniform on a ``log`` or
    ``linear`` scale."""

    scale: str
    low: float
    high: float

    def __post_init__(self):
        if self.scale not in ("log", "linear"):
            raise ValueError(f"Dim scale={self.scale!r} is not allowed; use 'log' or 'linear'")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"Dim low={self.low}, high={self.high}: need finite low < high")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"Dim low={self.low} is not allowed on a log scale; it must be > 0")

    def value(self, u: float) -> float:
        """The point at ``u`` in [0, 1]."""
        if self.scale == "log":
            return float(math.exp(math.log(self.low) + u * math.log(self.high / self.low)))
        return float(self.low + u * (self.high - self.low))

    @classmethod
    def parse(cls, text: str) -> Dim:
        """``"log:1e-4:3e-3"`` or ``"linear:0.1:0.3"`` (``"0.1:0.3"``: linear)."""
        parts = text.split(":")
        if len(parts) == 2:
            parts = ["linear", *parts]
        if len(parts) != 3:
            raise ValueError(f"{text!r} is not allowed; write SCALE:LOW:HIGH, e.g. log:1e-4:3e-3")
        try:
            return cls(parts[0], float(parts[1]), float(parts[2]))
        except ValueError as error:
            raise ValueError(f"{text!r}: {error}") from None


DEFAULT_SPACE: dict[str, Dim] = {
    "lr": Dim("log", 3e-5, 3e-3),
    "vf_lr": Dim("log", 3e-5, 3e-3),
    "gae_lambda": Dim("linear", 0.8, 0.99),
    "clip_eps": Dim("linear", 0.1, 0.4),
    "ent_coef": Dim("log", 1e-4, 1e-1),
    "vf_coef": Dim("linear", 0.25, 1.0),
    "max_grad_norm": Dim("log", 0.1, 10.0),
    "tau": Dim("log", 1e-3, 1e-1),
    "td_lambda": Dim("linear", 0.5, 0.99),
    "eps_decay_fraction": Dim("linear", 0.05, 0.5),
    "exploration_noise": Dim("linear", 0.05, 0.5),
    "gamma": Dim("linear", 0.9, 0.999),
}
"""Where each hyperparameter is searched; ``TUNED_BY_DEFAULT`` says which are."""

TUNED_BY_DEFAULT = (
    "lr", "vf_lr", "gae_lambda", "clip_eps", "ent_coef", "max_grad_norm", "tau",
    "td_lambda", "eps_decay_fraction", "exploration_noise",
)  # fmt: skip
"""Searched when no space is given (those the agent has); the discount is not, since
it changes the objective itself."""


def parse_space(pairs: tuple[str, ...], hparams: Any) -> dict[str, Dim]:
    """``("lr=log:1e-4:3e-3", "clip_eps")`` -> the searched dims: a bare name takes
    ``DEFAULT_SPACE``'s range; no pairs: ``TUNED_BY_DEFAULT`` among ``hparams``' fields."""
    fields = hparams.fields()
    if not pairs:
        return {name: DEFAULT_SPACE[name] for name in TUNED_BY_DEFAULT if name in fields}
    space = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if name not in fields:
            raise ValueError(
                f"--space {pair!r} is not allowed: {name!r} is not a hyperparameter of "
                f"{type(hparams).__name__}; it has {list(fields)}"
            )
        if not sep and name not in DEFAULT_SPACE:
            raise ValueError(f"--space {pair!r}: give its range, e.g. {name}=log:1e-4:1e-2")
        space[name] = Dim.parse(text) if sep else DEFAULT_SPACE[name]
    return space


def draw(space: dict[str, Dim], n: int, seed: int, sampler: str = "sobol") -> list[dict]:
    """``n`` candidate rows (``{name: value}``, 3 significant digits) from ``space``."""
    if sampler not in ("sobol", "random"):
        raise ValueError(f"sampler={sampler!r} is not allowed; use 'sobol' or 'random'")
    if sampler == "sobol":
        from scipy.stats import qmc

        points = qmc.Sobol(len(space), scramble=True, seed=seed).random(n)
    else:
        points = np.random.default_rng(seed).random((n, len(space)))
    # 3 significant digits: what a preset shows is exactly what was searched
    return [{name: float(f"{dim.value(u):.3g}") for (name, dim), u in
             zip(space.items(), row, strict=True)} for row in points]  # fmt: skip


def budgets(num_updates: int, rounds: int, eta: int) -> list[int]:
    """Updates each round trains to: ``num_updates * eta ** -(rounds - 1 - i)``,
    rounded, at least 1 and strictly increasing, the last the whole run."""
    out = []
    for i in range(rounds):
        b = max(1, round(num_updates * eta ** -(rounds - 1 - i)))
        out.append(max(b, out[-1] + 1) if out else b)
    if out[-1] != num_updates or len(set(out)) != rounds:
        raise ValueError(
            f"rounds={rounds} with eta={eta} does not fit a run of {num_updates} updates; "
            "use fewer rounds or a longer run"
        )
    return out


@dataclasses.dataclass
class TuneResult:
    table: Any  # pandas DataFrame: one row per candidate
    best: dict[str, float]
    budgets: list[int]
    info: dict[str, Any]


def tune(
    make_train: Any,
    config: Any,
    env_name: str,
    hparams: Any,
    space: dict[str, Dim],
    num_candidates: int = 27,
    num_seeds: int = 2,
    eta: int = 3,
    rounds: int = 3,
    seed: int = 0,
    sampler: str = "sobol",
    env_overrides: dict[str, Any] | None = None,
) -> TuneResult:
    """Successive halving over ``space`` (see the module docstring); the other
    hyperparameters stay at ``hparams``. Returns the table of every candidate (its
    values, the round it reached and its score in each round), the winner and the
    rounds' budgets in updates."""
    import pandas as pd

    for name, value in {"num_candidates": num_candidates, "num_seeds": num_seeds,
                        "rounds": rounds}.items():  # fmt: skip
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is not allowed; it must be an int >= 1")
    if not isinstance(eta, int) or eta < 2:
        raise ValueError(f"eta={eta!r} is not allowed; it must be an int >= 2")
    if not space:
        raise ValueError(f"nothing to search: {type(hparams).__name__} has no known fields")
    env, env_params = envs.make(env_name, **(env_overrides or {}))
    # No progress reports and no traced check (the rows are checked when stacked): no
    # host callback, so that jax's persistent cache can keep the programs.
    trainer = dataclasses.replace(make_train(config, env, env_params), report=False)
    ladder = budgets(trainer.num_updates, rounds, eta)
    rows = draw(space, num_candidates, seed, sampler)
    stacked = sweep.stack_hparams(hparams, rows)  # validated, [num_candidates]
    # runs: candidate-major, the same num_seeds keys for every candidate
    seed_keys = jax.random.split(jax.random.key(seed), num_seeds)
    alive = np.arange(num_candidates)

    def runs_of(candidates):
        return np.repeat(candidates, num_seeds)

    hp_runs = jax.tree.map(lambda x: x[runs_of(alive)], stacked)
    keys = jax.numpy.tile(seed_keys, num_candidates)
    state = jax.jit(jax.vmap(functools.partial(trainer.start, check=False)))(keys, hp_runs)
    metrics: dict[str, list[np.ndarray]] = {}
    scores = np.full((num_candidates, rounds), np.nan)
    done = 0
    for i, budget in enumerate(ladder):
        chunk = jax.jit(jax.vmap(trainer.chunk(budget - done), in_axes=(0, 0, None)))
        state, new = chunk(state, hp_runs, jax.numpy.int32(done))
        for name, value in jax.device_get(new).items():
            metrics.setdefault(name, []).append(np.asarray(value))
        done = budget
        so_far = {name: np.concatenate(parts, 1) for name, parts in metrics.items()}
        per_run = experiment.final_returns(so_far, SCORE_FRACTION)
        per_run[[f.run for f in training.faults(so_far)]] = -np.inf
        per_candidate = np.nan_to_num(per_run.reshape(len(alive), num_seeds), nan=-np.inf)
        scores[alive, i] = per_candidate.mean(1)
        if i == rounds - 1:
            break
        keep = max(1, len(alive) // eta)
        order = np.argsort(-scores[alive, i], kind="stable")[:keep]
        survivors = np.sort(order)
        run_index = (survivors[:, None] * num_seeds + np.arange(num_seeds)).ravel()
        alive = alive[survivors]
        state, hp_runs = jax.tree.map(lambda x, i=run_index: x[i], (state, hp_runs))
        metrics = {name: [np.concatenate(parts, 1)[run_index]] for name, parts in
                   metrics.items()}  # fmt: skip
    final = scores[alive, rounds - 1]
    best = int(alive[np.argmax(final)])
    table = pd.DataFrame(rows)
    table.insert(0, "candidate", np.arange(num_candidates))
    table["round_reached"] = (~np.isnan(scores)).sum(1) - 1
    for i in range(rounds):
        table[f"score_round_{i}"] = scores[:, i]
    table["best"] = table["candidate"] == best
    steps_per_update = experiment.update_steps(config, env, env_params)
    runs_trained = [len(np.flatnonzero(~np.isnan(scores[:, i]))) for i in range(rounds)]
    env_steps = sum(
        n * num_seeds * (b - (ladder[i - 1] if i else 0)) * steps_per_update
        for i, (n, b) in enumerate(zip(runs_trained, ladder, strict=True))
    )
    info = {
        "env": env_name, "env_overrides": env_overrides or {}, "space": {
            name: dataclasses.asdict(dim) for name, dim in space.items()},
        "num_candidates": num_candidates, "num_seeds": num_seeds, "eta": eta,
        "rounds": rounds, "seed": seed, "sampler": sampler,
        "budgets_updates": ladder, "budgets_env_steps": [b * steps_per_update for b in ladder],
        "candidates_per_round": runs_trained, "search_env_steps": env_steps,
        "score": f"mean over seeds of the training return in the last {SCORE_FRACTION:.0%} "
                 "of updates",
    }  # fmt: skip
    return TuneResult(table, rows[best], ladder, info)
