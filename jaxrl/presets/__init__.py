"""Presets: named, measured settings for one (algorithm, environment) pair.

A preset is data, one TOML file per env family beside this module (``gymnax.toml``,
``builtin.toml``, ...), readable and diffable. Each ``[[preset]]`` entry holds:

- ``algo``: the name ``jaxrl train`` uses (``ppo``, ``dqn``, ``sarsa``, ...);
- ``env``: the registered env name;
- ``config`` and ``hparams``: the fields that differ from the algorithm's defaults
  (anything not named keeps its default);
- ``env_params`` (optional): env params the preset was measured with, e.g. a Brax
  physics backend (``--env-param`` flags override single ones);
- ``source``: where the values come from (a peer's shipped config, a paper, or
  the ``jaxrl tune`` command that found them);
- ``result``: what it reaches, measured: ``metric``, ``mean``, ``spread`` (the
  lowest and highest seed), ``seeds``, ``env_steps``, ``wall_seconds``,
  ``machine``, ``date`` and the ``command`` that reproduces it.

``jaxrl train ALGO --env NAME`` (and every ``experiments/`` script and
``jaxrl sweep``) applies the preset for the pair when there is one, says which,
and records it in ``summary.json``; explicit flags override single fields and
``--preset none`` gives the bare defaults. Where a pair has no preset the run says
so, and ``space_defaults`` adapts the defaults to the env's spaces (the conv torso
for image observations). In Python::

    preset = presets.get("ppo", "gymnax:Acrobot-v1")
    config, hparams = preset.apply(ppo.PPOConfig(), ppo.PPOHParams())
    env, env_params = envs.make(preset.env, **preset.env_params)

TOML rather than YAML or Python: ``tomllib`` is in the standard library, the
files hold nothing but values, and a diff of one shows exactly what changed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

FIELDS = {"algo", "env", "source", "config", "hparams", "result"}
OPTIONAL_FIELDS = {"env_params"}
RESULT_FIELDS = {
    "metric", "mean", "spread", "seeds", "env_steps", "wall_seconds", "machine", "date",
    "command",
}  # fmt: skip
AUTO, NONE = "auto", "none"


@dataclasses.dataclass(frozen=True)
class Preset:
    algo: str
    env: str
    source: str
    config: Mapping[str, Any]
    hparams: Mapping[str, Any]
    result: Mapping[str, Any]
    file: str
    env_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.algo}@{self.env}"

    def apply(self, config: Any, hparams: Any) -> tuple[Any, Any]:
        """``(config, hparams)`` with this preset's fields replaced (the config is
        validated again by its ``__post_init__``)."""
        for what, values, obj in (("config", self.config, config), ("hparams", self.hparams,
                                                                     hparams)):  # fmt: skip
            fields = [f.name for f in dataclasses.fields(obj)]
            unknown = sorted(set(values) - set(fields))
            if unknown:
                raise ValueError(
                    f"preset {self.name} ({self.file}): {what} field(s) {unknown} are not "
                    f"fields of {type(obj).__name__}; allowed: {sorted(fields)}"
                )
        config = dataclasses.replace(config, **_tuples(self.config))
        return config, hparams.replace(**self.hparams)

    def describe(self) -> str:
        """One line: the preset, its expected result and where it comes from."""
        r = self.result
        low, high = r["spread"]
        env_params = "".join(f", {k}={v!r}" for k, v in self.env_params.items())
        return (
            f"{self.name}{env_params}: {r['metric']} {r['mean']:g} (seeds {low:g}..{high:g}, "
            f"{r['seeds']} seeds, {r['env_steps']:,} env steps, {r['wall_seconds']:g} s on "
            f"{r['machine']}, {r['date']}); from {self.source}"
        )

    def record(self) -> dict[str, Any]:
        """What ``summary.json`` keeps of the preset."""
        return {"name": self.name, "file": self.file, "source": self.source,
                "config": dict(self.config), "hparams": dict(self.hparams),
                "env_params": dict(self.env_params), "expected": dict(self.result)}  # fmt: skip


def _tuples(values: Mapping[str, Any]) -> dict[str, Any]:
    # TOML arrays load as lists; config fields such as hidden_sizes are tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _check(entry: dict, file: str) -> None:
    where = f"{file}: preset {entry.get('algo')}@{entry.get('env')}"
    missing, extra = FIELDS - set(entry), set(entry) - FIELDS - OPTIONAL_FIELDS
    if missing or extra:
        raise ValueError(f"{where}: missing {sorted(missing)}, unknown {sorted(extra)}")
    missing = RESULT_FIELDS - set(entry["result"])
    if missing:
        raise ValueError(f"{where}: result lacks {sorted(missing)}")


@cache
def all_presets() -> tuple[Preset, ...]:
    """Every preset in the TOML files beside this module, in file order."""
    out, seen = [], set()
    for path in sorted(Path(__file__).parent.glob("*.toml")):
        for entry in tomllib.loads(path.read_text())["preset"]:
            _check(entry, path.name)
            preset = Preset(
                entry["algo"], entry["env"], entry["source"], entry["config"],
                entry["hparams"], entry["result"], path.name, entry.get("env_params", {}),
            )  # fmt: skip
            if preset.name in seen:
                raise ValueError(f"{path.name}: preset {preset.name} is defined twice")
            seen.add(preset.name)
            out.append(preset)
    return tuple(out)


def get(algo: str, env: str) -> Preset | None:
    """The preset for ``algo`` on ``env``, or None where there is none."""
    return next((p for p in all_presets() if p.algo == algo and p.env == env), None)


def choose(algo: str, env: str, choice: str = AUTO) -> Preset | None:
    """The preset a run uses: ``auto`` (the pair's, if any), ``none``, or a preset
    name ``ALGO@ENV`` (which must exist and be for ``algo``)."""
    if choice == NONE:
        return None
    if choice == AUTO:
        return get(algo, env)
    names = {p.name: p for p in all_presets()}
    if choice not in names:
        raise ValueError(
            f"--preset {choice!r} is not allowed; it must be 'auto', 'none' or one of "
            f"{sorted(names)}"
        )
    if names[choice].algo != algo:
        raise ValueError(f"--preset {choice!r} is for {names[choice].algo}, not {algo}")
    return names[choice]


CONTINUOUS_DEFAULTS = {"squash": True, "state_std": True}
"""Config fields set for continuous (Box) actions where the agent has them (PPO): a
tanh-squashed Gaussian whose std depends on the state, as brax.training's. Measured
(``experiments/bench_locomotion.py``; the PPO module docstring): on ``brax:ant``
2,834 against 60-1,465 without one or the other, and the same choices level with
or above brax.training on halfcheetah, hopper and walker2d; no different on
``gymnax:Pendulum-v1`` (-970 against -962 at 150k steps, both far from solving it)."""


def space_defaults(
    config: Any, obs_shape: tuple[int, ...], argv: list[str], continuous: bool = False
) -> tuple[Any, list[str]]:
    """``(config, reasons)``: defaults chosen from the env's spaces for a run without a
    preset. Image observations (height, width, channels) get the conv torso
    (``torso='cnn'``) where the agent has one; continuous actions get
    ``CONTINUOUS_DEFAULTS`` where the agent has those fields. A field given on the
    command line (``--torso``, ``--squash`` / ``--no-squash``, ...) is left as
    given. ``reasons`` says what changed and why."""
    reasons = []
    if (
        len(obs_shape) == 3
        and getattr(config, "torso", None) == "mlp"
        and flag_value(argv, "--torso") is None
    ):
        config = dataclasses.replace(config, torso="cnn")
        reasons.append(f"torso='cnn' (image observations of shape {tuple(obs_shape)})")
    if continuous:
        fields = getattr(config, "__dataclass_fields__", {})
        chosen = {
            name: value
            for name, value in CONTINUOUS_DEFAULTS.items()
            if name in fields and not _given(argv, name) and getattr(config, name) != value
        }
        if chosen:
            config = dataclasses.replace(config, **chosen)
            shown = ", ".join(f"{k}={v}" for k, v in chosen.items())
            reasons.append(f"{shown} (continuous actions: a tanh-squashed Gaussian whose std "
                           "depends on the state)")  # fmt: skip
    return config, reasons


def _given(argv: list[str], field: str) -> bool:
    """Whether ``argv`` sets the config field ``field`` (``--field``, ``--no-field``,
    ``--field=V``)."""
    flag = "--" + field.replace("_", "-")
    negated = "--no-" + field.replace("_", "-")
    return any(a in (flag, negated) or a.startswith(flag + "=") for a in argv)


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value given to ``flag`` in ``argv`` (``--flag V`` or ``--flag=V``), the last
    one if repeated; None if absent. Read before tyro parses, since the preset decides
    the defaults tyro shows and fills in."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.partition("=")[2]
    return value


def announce(algo: str, env: str, preset: Preset | None, choice: str) -> None:
    """Say which preset a run uses (or why none)."""
    if preset is not None:
        print(f"preset {preset.describe()}")
    elif choice == NONE:
        print(f"preset: none (--preset none): {algo}'s defaults on {env}")
    else:
        print(f"preset: none for {algo} on {env} (jaxrl presets lists them): {algo}'s defaults")


def toml_value(value: Any) -> str:
    """``value`` (a string, bool, number, list or mapping of them) as a TOML value."""
    import json
    import math

    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written to a preset")
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"{type(value).__name__} cannot be written to a preset: {value!r}")


def entry(
    algo: str,
    env: str,
    config: Any,
    hparams: Any,
    default_config: Any,
    default_hparams: Any,
    env_params: Mapping[str, Any],
    source: str,
    verified: Mapping[str, Any],
) -> str:
    """A ``[[preset]]`` entry (TOML text) for ``config`` and ``hparams``: the fields that
    differ from the defaults, and as its result the greedy evaluation of ``verified``
    (an ``experiment.run`` summary of those settings, run as ``jaxrl train`` runs)."""
    import datetime

    changed = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in dataclasses.asdict(config).items()
        if value != getattr(default_config, name)
    }
    tuned = {
        name: float(value)
        for name, value in hparams.asdict().items()
        if float(value) != float(getattr(default_hparams, name))
    }
    per_seed = verified["eval_return_per_seed"]
    cpu = verified["cpu"]
    seeds, seed = verified["num_seeds"], verified["seed"]
    out = f"runs/{algo}-{env.split(':')[-1].lower()}"
    result = {
        "metric": "greedy eval return",
        "mean": round(float(verified["eval_return_mean"]), 1),
        "spread": [round(float(min(per_seed)), 1), round(float(max(per_seed)), 1)],
        "seeds": seeds,
        "env_steps": verified["total_env_steps"],
        "wall_seconds": round(verified["compile_seconds"] + verified["run_seconds"]),
        "machine": f"{cpu['model']} x{cpu['usable_cores']}, jax {verified['jax_version']} "
        "(compile and training; the whole process takes longer)",
        "date": datetime.date.today().isoformat(),
        "command": f"jaxrl train {algo} --env {env} --num-seeds {seeds} --seed {seed} --out {out}",
    }
    lines = ["[[preset]]", f"algo = {toml_value(algo)}", f"env = {toml_value(env)}"]
    if env_params:
        lines.append(f"env_params = {toml_value(dict(env_params))}")
    lines += [
        f"source = {toml_value(source)}",
        f"config = {toml_value(changed)}",
        f"hparams = {toml_value(tuned)}",
        f"result = {toml_value(result)}",
    ]
    return "\n".join(lines) + "\n"
