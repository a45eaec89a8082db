"""The ``jaxrl`` command: train, sweep, evaluate, plot, export and serve from a shell.

    jaxrl train ppo --env gymnax:CartPole-v1 --num-seeds 8 --out runs/ppo
    jaxrl sweep ppo --env GridWorld-FourRooms --grid lr=1e-3,3e-4 --num-seeds 4 --out runs/sw
    jaxrl tune ppo --env gymnax:Acrobot-v1 --num-candidates 27 --out runs/tune
    jaxrl eval runs/ppo            jaxrl plot runs/ppo            jaxrl envs
    jaxrl export runs/ppo runs/ppo/policy            jaxrl serve runs/ppo/policy --port 8000

Every command's flags are typed and documented by tyro (``jaxrl <command> --help``;
``jaxrl train <algo> --help`` lists the algorithm's config fields and
hyperparameters). The first words pick the command (and the algorithm) by hand,
so each algorithm's flags are built only when asked for.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

COMMANDS = {
    "train": "train an algorithm, many seeds in one compiled call (jaxrl train ALGO --help)",
    "sweep": "seeds x a hyperparameter grid in one compiled call (jaxrl sweep ALGO --help)",
    "tune": "search hyperparameters by successive halving, write the winner as a preset",
    "eval": "evaluate the final policies of a run directory",
    "plot": "plot a run directory's learning curve, or a sweep's return vs hyperparameters",
    "render": "render one episode of a run's policy (GIF, plot or Brax HTML)",
    "export": "export a run's policy to a self-contained artifact",
    "serve": "answer HTTP JSON requests with an exported policy",
    "envs": "list the registered environments",
    "presets": "list the presets (measured settings per algorithm and env) and their results",
}


def _usage(prog: str, choices: list[str], describe: Callable[[str], str], what: str) -> str:
    width = max(map(len, choices)) + 2
    lines = [f"usage: {prog} {what.upper()} [flags]", "", f"{what}s:"]
    lines += [f"  {name:<{width}}{describe(name)}" for name in choices]
    return "\n".join(lines)


def _pick(
    argv: list[str], choices: list[str], describe: Callable[[str], str], prog: str, what: str
) -> str:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(prog, choices, describe, what))
        raise SystemExit(0 if argv else 2)
    if argv[0] not in choices:
        usage = _usage(prog, choices, describe, what)
        print(f"{prog}: unknown {what} {argv[0]!r}\n\n{usage}", file=sys.stderr)
        raise SystemExit(2)
    return argv[0]


def _describe_agent(name: str) -> str:
    from jaxrl import agents

    return agents.get(name).description


def main(argv: list[str] | None = None) -> None:
    """The console script: ``jaxrl COMMAND ... [--debug]``. An error prints one line and
    exits with 2 for bad input, 1 for another failure; ``--debug`` shows the traceback
    instead (``experiment.clean_errors``)."""
    from jaxrl import experiment

    argv = sys.argv[1:] if argv is None else argv
    with experiment.clean_errors("jaxrl", argv):
        run(experiment.pop_debug(argv))


def run(argv: list[str]) -> Any:
    """Run the command ``argv`` names and return its result (for tests and notebooks)."""
    from jaxrl import agents

    command = _pick(argv, list(COMMANDS), COMMANDS.get, "jaxrl", "command")
    rest = argv[1:]
    if command in ("train", "sweep", "tune"):
        name = _pick(rest, agents.registered(), _describe_agent, f"jaxrl {command}", "algorithm")
        return {"train": train, "sweep": sweep, "tune": tune}[command](name, rest[1:])
    commands = {"eval": evaluate, "plot": plot, "render": render, "export": export}
    return (commands | {"serve": serve, "envs": list_envs, "presets": list_presets})[command](rest)


def train(name: str, argv: list[str]) -> dict[str, Any]:
    from jaxrl import agents, experiment

    return experiment.main(agents.get(name), argv=argv, prog=f"jaxrl train {name}")


@dataclasses.dataclass(frozen=True)
class SweepFlags:
    out: Path
    """Directory for runs.csv, curves.npz, summary.json and sweep.png."""
    grid: tuple[str, ...] = ()
    """Hyperparameters to sweep, as name=v1,v2,...; several names after one flag:
    --grid lr=1e-3,3e-4 ent_coef=0,0.01."""
    env_grid: tuple[str, ...] = ()
    """Env params to sweep, as name=v1,v2,... (crossed with --grid)."""
    env_param: tuple[str, ...] = ()
    """Env params held fixed for every run, as name=value (e.g. slip=0.2)."""
    num_seeds: int = 4
    """Seeds per grid point."""
    seed: int = 0
    """Seed of the first key; the same seeds at every grid point."""
    batch_size: int | None = None
    """Runs trained together; batches run in sequence in the same compiled call."""
    devices: int | None = None
    """Local devices to split the runs over (None: the most that divide them)."""
    compile_cache: bool = True
    """Keep compiled programs in jax's persistent cache (--no-compile-cache: off)."""
    cpu_devices: int | None = None
    """CPU devices to expose before jax starts. None: one per usable core on a CPU-only
    host (jaxrl.parallel.use_every_core), XLA_FLAGS's count where it sets one;
    --cpu-devices 1: a single device."""
    eval_episodes: int = 16
    """Greedy evaluation episodes per run (0: none)."""
    preset: str = "auto"
    """Settings to start from: 'auto' (the preset for this algorithm and env, if any),
    'none' (the algorithm's defaults) or a name ALGO@ENV; --grid and flags override."""


def parse_grid(pairs: tuple[str, ...], flag: str) -> dict[str, list[Any]]:
    """``("lr=1e-3,3e-4",)`` -> ``{"lr": [0.001, 0.0003]}`` (values as Python literals)."""
    from jaxrl.experiment import parse_env_params

    grid = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        if not sep or not values.strip():
            raise ValueError(f"{flag} {pair!r} is not allowed; it must be name=v1,v2,...")
        grid[name.strip()] = [
            parse_env_params((f"{name}={v}",))[name.strip()] for v in values.split(",")
        ]
    return grid


def _algo_args(name: str, argv: list[str], flags: type, command: str) -> tuple:
    """``(agent, preset, args)`` of ``jaxrl COMMAND NAME argv``: ``flags``' fields plus
    the agent's config and hyperparameters, parsed over the defaults of the preset that
    ``--preset`` and ``--env`` pick."""
    from jaxrl import agents, experiment

    agent = agents.get(name)
    preset, config, hparams = experiment.preset_defaults(
        name, argv, agent.default_env, agent.Config(), agent.HParams()
    )
    args_cls = experiment.args_class(
        name, agent.Config, agent.HParams, agent.default_env, config, hparams, bases=(flags,)
    )
    return agent, preset, experiment.parse_args(args_cls, argv, f"jaxrl {command} {name}")


def sweep(name: str, argv: list[str]) -> Any:
    from jaxrl import experiment, parallel, rundir

    agent, preset, args = _algo_args(name, argv, SweepFlags, "sweep")
    parallel.prepare_process(args.cpu_devices, args.compile_cache)
    grid = parse_grid(args.grid, "--grid")
    env_grid = parse_grid(args.env_grid, "--env-grid")
    overrides = experiment.env_overrides(preset, args.env_param)
    config = experiment.space_defaults(args.config, args.env, overrides, argv, preset)
    with rundir.holding(args.out):  # one process at a time on a sweep directory
        return _sweep_and_write(agent, config, args, grid, env_grid, overrides, preset)


def _sweep_and_write(agent, config, args, grid, env_grid, overrides, preset) -> Any:
    from jaxrl import experiment
    from jaxrl import sweep as sweeps

    result = sweeps.sweep(
        agent.make_train, config, args.env, args.hparams, grid, args.num_seeds, args.seed,
        env_grid, args.batch_size, args.devices,
        agent.make_policy if args.eval_episodes else None, max(args.eval_episodes, 1),
        overrides,
    )  # fmt: skip
    result.save(args.out)
    swept = [*env_grid, *grid]
    score = "eval_return" if args.eval_episodes else "final_return"
    points = result.table.groupby(swept, sort=False)[score] if swept else None
    summary = {
        "algo": agent.name,
        **result.info,
        "score": score,
        "points": _point_stats(points, swept) if swept else [],
        "diverged_runs": int((result.table["diverged_at"] >= 0).sum()),
        "preset": None if preset is None else preset.record(),
    }
    experiment.write_json(args.out / "summary.json", summary)
    print(result.table.to_string(max_rows=40))
    if swept:
        plot_sweep(result.table, swept, score, args.out / "sweep.png")
    if summary["diverged_runs"]:
        print(
            f"{summary['diverged_runs']} of {len(result.table)} runs diverged (non-finite "
            "numbers; runs.csv: diverged_at, diverged)"
        )
    print(f"wrote {args.out}/runs.csv, curves.npz, summary.json")
    return summary


@dataclasses.dataclass(frozen=True)
class TuneFlags:
    out: Path
    """Directory for tune.csv, tune.png, summary.json, preset.toml and verify/."""
    space: tuple[str, ...] = ()
    """Hyperparameters to search, as name=SCALE:LOW:HIGH (log or linear), or a bare
    name for jaxrl.tune.DEFAULT_SPACE's range; none given: jaxrl.tune.TUNED_BY_DEFAULT."""
    num_candidates: int = 27
    """Candidates drawn at the start (round 0 trains them all)."""
    eta: int = 3
    """Each round keeps the best 1/eta and trains them eta times longer."""
    rounds: int = 3
    """Rounds; the last trains the finalists for the whole run (--total-steps)."""
    num_seeds: int = 2
    """Seeds per candidate (the same seeds for every candidate)."""
    seed: int = 0
    """Seed of the search's keys and of the Sobol scrambling."""
    sampler: str = "sobol"
    """'sobol' (scrambled Sobol points) or 'random'."""
    verify_seeds: int = 4
    """Fresh seeds (keys from --seed + 1000) on which the winner is trained again as
    jaxrl train would, for the preset's result; 0: no verification (no preset.toml)."""
    env_param: tuple[str, ...] = ()
    """Env params held fixed, as name=value."""
    preset: str = "auto"
    """Settings to start from: 'auto', 'none' or a name ALGO@ENV (as jaxrl train)."""
    compile_cache: bool = True
    """Keep compiled programs in jax's persistent cache (--no-compile-cache: off)."""


def tune(name: str, argv: list[str]) -> dict[str, Any]:
    """``jaxrl tune ALGO``: successive halving (``jaxrl.tune``), then the winner trained
    on fresh seeds and written as a preset entry (``DIR/preset.toml``)."""
    from jaxrl import experiment, parallel, presets, rundir
    from jaxrl import tune as tuning

    agent, preset, args = _algo_args(name, argv, TuneFlags, "tune")
    parallel.prepare_process(None, args.compile_cache, every_core=False)  # tune: one device
    space = tuning.parse_space(args.space, args.hparams)
    if args.verify_seeds < 0:
        raise ValueError(f"verify_seeds={args.verify_seeds} is not allowed; it must be >= 0")
    overrides = experiment.env_overrides(preset, args.env_param)
    config = experiment.space_defaults(args.config, args.env, overrides, argv, preset)
    with rundir.holding(args.out):
        result = tuning.tune(
            agent.make_train, config, args.env, args.hparams, space, args.num_candidates,
            args.num_seeds, args.eta, args.rounds, args.seed, args.sampler, overrides,
        )  # fmt: skip
        table = result.table
        table.to_csv(args.out / "tune.csv", index=False)
        plot_tune(table, list(space), args.out / "tune.png")
        print(table.sort_values(f"score_round_{args.rounds - 1}", ascending=False)
              .head(10).to_string(index=False))  # fmt: skip
        best = args.hparams.replace(**result.best)
        command = "jaxrl tune " + " ".join([name, *argv])
        summary = {"algo": name, **result.info, "best": result.best, "command": command,
                   "preset": None if preset is None else preset.record(), "verified": None,
                   **experiment.machine()}  # fmt: skip
        print(f"best: {', '.join(f'{k}={v:.4g}' for k, v in result.best.items())}")
    if args.verify_seeds:  # a run directory of its own (it holds its own lock)
        verified = experiment.run(
            name, agent.make_train, config, best, args.env, args.verify_seeds,
            args.seed + 1000, args.out / "verify", make_policy=agent.make_policy,
            env_overrides=overrides, preset=preset,
        )  # fmt: skip
        summary["verified"] = {k: verified[k] for k in (
            "eval_return_mean", "eval_return_per_seed", "final_return_mean",
            "total_env_steps", "compile_seconds", "run_seconds")}  # fmt: skip
        entry = presets.entry(
            name, args.env, config, best, agent.Config(), agent.HParams(), overrides,
            source=f"found by `{command}` (successive halving over {sorted(space)}; "
            f"tune.csv beside it)", verified=verified,
        )  # fmt: skip
        (args.out / "preset.toml").write_text(entry)
        print(f"wrote {args.out / 'preset.toml'}: add it to jaxrl/presets/ to make it the "
              "default for this pair")  # fmt: skip
    experiment.write_json(args.out / "summary.json", summary)
    return summary


def plot_tune(table: Any, names: list[str], path: Path) -> None:
    """One panel per searched hyperparameter: each candidate's last score against its
    value (log axis for log-scaled ones), coloured by the round it reached."""
    from matplotlib.figure import Figure

    rounds = int(table["round_reached"].max()) + 1
    last = np.array([table.loc[i, f"score_round_{r}"] for i, r in
                     enumerate(table["round_reached"])], np.float64)  # fmt: skip
    fig = Figure(figsize=(3.6 * len(names), 3.4))
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for r in range(rounds):
            mask = (table["round_reached"] == r).to_numpy() & np.isfinite(last)
            ax.scatter(table[name][mask], last[mask], s=14 + 10 * r, label=f"round {r}")
        best = table["best"].to_numpy()
        ax.scatter(table[name][best], last[best], marker="*", s=120, c="k", label="best")
        values = table[name].to_numpy(np.float64)
        if values.min() > 0 and values.max() / values.min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        if i == 0:
            ax.set_ylabel("score in the last round reached")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _point_stats(points, swept: list[str]) -> list[dict[str, Any]]:
    from jaxrl import stats

    rows = []
    for values, group in points:
        values = values if isinstance(values, tuple) else (values,)
        scores = group.to_numpy(np.float64)[:, None]
        scores = scores[np.isfinite(scores[:, 0])]
        row = dict(zip(swept, map(_plain, values), strict=True))
        if len(scores):
            for metric in ("mean", "iqm"):
                ci = stats.stratified_bootstrap_ci(scores, stats.METRICS[metric], reps=1000)
                row |= {metric: float(ci[0]), f"{metric}_ci95": [float(ci[1]), float(ci[2])]}
        rows.append(row)
    return rows


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def plot_sweep(table: Any, swept: list[str], score: str, path: Path) -> None:
    """One panel per swept name: the score (mean over the other names and seeds, with a
    95% bootstrap interval across runs) against that name's values."""
    from matplotlib.figure import Figure

    from jaxrl.experiment import bootstrap_ci

    fig = Figure(figsize=(4 * len(swept), 3.5))
    for i, name in enumerate(swept):
        ax = fig.add_subplot(1, len(swept), i + 1)
        xs, means, lows, highs = [], [], [], []
        for value, group in table.groupby(name):
            scores = group[score].to_numpy(np.float64)
            scores = scores[np.isfinite(scores)]
            if not len(scores):
                continue
            low, high = bootstrap_ci(scores)
            xs.append(value)
            means.append(scores.mean())
            lows.append(low)
            highs.append(high)
        ax.errorbar(
            range(len(xs)),
            means,
            yerr=[np.subtract(means, lows), np.subtract(highs, means)],
            fmt="o-",
            capsize=4,
        )
        ax.set_xticks(range(len(xs)), [f"{x:g}" if isinstance(x, float) else str(x) for x in xs])
        ax.set_xlabel(name)
        ax.set_ylabel(score)
    fig.suptitle("mean over runs, 95% bootstrap interval")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


@dataclasses.dataclass(frozen=True)
class EvalFlags:
    run_dir: Annotated[Path, tyro.conf.Positional]
    """A directory written by jaxrl train (or experiments/<algo>.py)."""
    episodes: int = 100
    """Episodes per seed; the same eval keys for every seed."""
    stochastic: bool = False
    """Sample actions instead of acting greedily / deterministically."""
    eval_seed: int = 12345
    """Seed of the eval keys."""


def evaluate(argv: list[str]) -> dict[str, Any]:
    from jaxrl import experiment, rundir

    args = tyro.cli(EvalFlags, args=argv, prog="jaxrl eval")
    run = rundir.load_run(args.run_dir)
    name, summary, update = run.agent.name, run.summary, run.update
    returns = experiment.evaluate_runs(
        run.agent.make_policy, run.config, summary["env"], summary.get("env_overrides"),
        run.state, args.episodes, args.eval_seed, not args.stochastic,
    )  # fmt: skip
    low, high = experiment.bootstrap_ci(returns)
    result = {
        "algo": name,
        "env": summary["env"],
        "update": update,
        "episodes_per_seed": args.episodes,
        "deterministic": not args.stochastic,
        "eval_seed": args.eval_seed,
        "return_mean": float(returns.mean()),
        "return_ci95": [low, high],
        "return_per_seed": returns.tolist(),
    }
    print(f"{name} on {summary['env']}, update {update}, {args.episodes} episodes per seed:")
    print(f"mean return {returns.mean():.2f}  95% CI [{low:.2f}, {high:.2f}]  per seed {returns}")
    experiment.write_json(args.run_dir / "eval.json", result)
    return result


@dataclasses.dataclass(frozen=True)
class PlotFlags:
    run_dir: Annotated[Path, tyro.conf.Positional]
    """A run directory (curves.npz) or a sweep directory (runs.csv)."""


def plot(argv: list[str]) -> Path:
    from jaxrl import experiment

    args = tyro.cli(PlotFlags, args=argv, prog="jaxrl plot")
    summary = json.loads((args.run_dir / "summary.json").read_text())
    if (args.run_dir / "runs.csv").exists():
        import pandas as pd

        table = pd.read_csv(args.run_dir / "runs.csv")
        swept = [*summary["env_grid"], *summary["grid"]]
        path = args.run_dir / "sweep.png"
        plot_sweep(table, swept, summary["score"], path)
    else:
        curves = dict(np.load(args.run_dir / "curves.npz"))
        steps = summary["total_env_steps"] // curves["episodes"].shape[-1]
        path = args.run_dir / "curve.png"
        title = f"{summary['algo']} on {summary['env']}"
        experiment.plot_curve(experiment.learning_curve(curves), steps, title, path)
    print(f"wrote {path}")
    return path


@dataclasses.dataclass(frozen=True)
class RenderFlags:
    run_dir: Annotated[Path, tyro.conf.Positional]
    """A run directory written by jaxrl train."""
    out: Path | None = None
    """Where to write (the suffix is set by the drawing); default RUN_DIR/episode."""
    seed_index: int = 0
    """Which of the run's seeds acts."""
    stochastic: bool = False
    """Sample actions instead of acting greedily / deterministically."""
    episode_seed: int = 0
    """Seed of the episode's reset and steps."""


def render(argv: list[str]) -> Path:
    import jax

    import envs
    from jaxrl import render as rendering
    from jaxrl import rundir

    args = tyro.cli(RenderFlags, args=argv, prog="jaxrl render")
    run = rundir.load_run(args.run_dir)
    summary = run.summary
    if run.agent.recurrent(run.config):
        raise ValueError("jaxrl render does not render recurrent (gru_size > 0) policies yet")
    one = _seed(run.state, args.seed_index, summary)
    overrides = summary.get("env_overrides", {})
    env, env_params = envs.make(summary["env"], **overrides)
    act = run.agent.make_policy(run.config, env, env_params, one, not args.stochastic)
    path = rendering.render(
        summary["env"], act, jax.random.key(args.episode_seed),
        args.out or args.run_dir / "episode", overrides,
    )  # fmt: skip
    print(f"wrote {path}")
    return path


def _seed(state: Any, index: int, summary: dict[str, Any]) -> Any:
    import jax

    if not 0 <= index < summary["num_seeds"]:
        raise ValueError(
            f"seed_index={index} is not allowed; the run has {summary['num_seeds']} seeds"
        )
    return jax.tree.map(lambda x: x[index], state)


@dataclasses.dataclass(frozen=True)
class ExportFlags:
    run_dir: Annotated[Path, tyro.conf.Positional]
    """A run directory written by jaxrl train."""
    artifact: Annotated[Path, tyro.conf.Positional]
    """Where to write the policy artifact (a directory)."""
    seed_index: int = 0
    """Which of the run's seeds to export."""
    stochastic: bool = False
    """Export the sampling policy instead of the greedy / deterministic one."""
    overwrite: bool = False
    """Replace an existing artifact."""


def export(argv: list[str]) -> Path:

    import envs
    from jaxrl import export as exporting
    from jaxrl import rundir

    args = tyro.cli(ExportFlags, args=argv, prog="jaxrl export")
    if args.artifact.exists() and not args.overwrite:
        raise FileExistsError(f"{args.artifact} exists; pass --overwrite to replace it")
    run = rundir.load_run(args.run_dir)
    summary = run.summary
    one = _seed(run.state, args.seed_index, summary)
    env, env_params = envs.make(summary["env"], **summary.get("env_overrides", {}))
    path = exporting.export_agent(
        run.agent, run.config, env, env_params, one, args.artifact, summary["env"],
        deterministic=not args.stochastic, overwrite=args.overwrite,
    )  # fmt: skip
    print(f"wrote {path}")
    return path


def serve(argv: list[str]) -> None:
    from jaxrl import serve as serving

    serving.main(argv)


def list_envs(argv: list[str]) -> list[str]:
    import envs
    from envs import registry

    if argv:
        print(f"jaxrl envs takes no arguments (got {argv}); gymnax:<id> and brax:<name> also work")
    names = envs.registered(adapters=False)
    width = max(map(len, names)) + 2
    for name in names:
        print(f"{name:<{width}}{registry.describe(name)}")
    print(f"{'gymnax:<id>':<{width}}every gymnax environment, e.g. gymnax:CartPole-v1")
    print(f"{'brax:<name>':<{width}}every Brax environment, e.g. brax:ant")
    return names


def list_presets(argv: list[str]) -> list[str]:
    """``jaxrl presets [ALGO ...]``: every preset (or those of the named algorithms)
    with the result it should reach and where it comes from."""
    from jaxrl import agents, presets

    unknown = [a for a in argv if a not in agents.registered()]
    if unknown:
        print(f"jaxrl presets: unknown algorithm(s) {unknown}; allowed: "
              f"{sorted(agents.registered())}", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    chosen = [p for p in presets.all_presets() if not argv or p.algo in argv]
    for preset in chosen:
        print(preset.describe())
        print(f"    reproduce: {preset.result['command']}")
    if not chosen:
        print("no presets for " + ", ".join(argv))
    return [p.name for p in chosen]


if __name__ == "__main__":
    main()
