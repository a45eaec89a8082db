"""What every single-file training script shares: build the env, compile
``jit(vmap(train))`` over seeds once (timed apart from the run), summarise the
returns, print a table, write ``summary.json`` and a learning-curve PNG.

``final_return`` of a seed is the mean return of the episodes that finished in
the last 5% of its updates; confidence intervals across seeds are percentile
bootstraps (10,000 resamples of the seeds).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from jaxrl import checkpoint, distributed, loggers, parallel, presets, rundir, training
from jaxrl import hparams as H
from jaxrl.agents import Agent
from jaxrl.evaluate import episode_limit, evaluate
from jaxrl.progress import Progress
from jaxrl.provenance import machine

FINAL_FRACTION = 0.05


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as strict JSON (non-finite numbers as null: ``loggers.json_safe``)
    to a temporary name, then rename it onto ``path``, so a failed or interrupted
    run never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(loggers.json_safe(data), indent=2, allow_nan=False))
    tmp.replace(path)


BAD_INPUT = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)
"""Errors that mean the command's input is wrong (exit code 2); any other is a failure (1)."""


@contextlib.contextmanager
def clean_errors(prog: str, argv: list[str]):
    """For command lines (``jaxrl``, ``experiments/*.py``): an error leaving the block
    prints one line, ``PROG: error: MESSAGE``, and exits with 2 for bad input
    (``BAD_INPUT``) or 1 for any other failure, instead of a traceback; ``--debug``
    in ``argv`` lets the exception through with its traceback. The caller removes
    ``--debug`` from the arguments it parses (``pop_debug``). Ctrl-C prints one line
    and exits with 130, as shells expect of an interrupted command; what was saved
    before it (the run directory's checkpoints) stays, and the same command resumes."""
    try:
        yield
    except KeyboardInterrupt:
        if "--debug" in argv:
            raise
        print(f"{prog}: interrupted; run the same command to resume from the last "
              "checkpoint, if one was written", file=sys.stderr)  # fmt: skip
        raise SystemExit(130) from None
    except Exception as exc:
        if "--debug" in argv:
            raise
        bad_input = isinstance(exc, BAD_INPUT)
        kind = "error" if bad_input else f"failed ({type(exc).__name__})"
        print(f"{prog}: {kind}: {exc}", file=sys.stderr)
        print(f"{prog}: add --debug for the traceback", file=sys.stderr)
        raise SystemExit(2 if bad_input else 1) from None


def pop_debug(argv: list[str]) -> list[str]:
    """``argv`` without ``--debug`` (``clean_errors`` reads it)."""
    return [arg for arg in argv if arg != "--debug"]


def _closer(log: loggers.Logger) -> Callable[..., bool]:
    """An ``ExitStack`` exit callback closing ``log``, as failed if an exception is leaving."""

    def close(exc_type, exc, tb) -> bool:
        log.close(failed=exc_type is not None)
        return False  # never swallows the exception

    return close


def final_returns(metrics: dict[str, Any], fraction: float = FINAL_FRACTION) -> np.ndarray:
    """Per seed: mean return of episodes finished in the last ``fraction`` of updates."""
    sums, counts = np.asarray(metrics["episode_return_sum"]), np.asarray(metrics["episodes"])
    tail = max(1, int(round(sums.shape[-1] * fraction)))
    with np.errstate(invalid="ignore"):
        return sums[..., -tail:].sum(-1) / counts[..., -tail:].sum(-1)


def bootstrap_ci(
    values: np.ndarray, level: float = 0.95, resamples: int = 10_000
) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(0)
    means = rng.choice(values, (resamples, len(values))).mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def learning_curve(metrics: dict[str, Any]) -> np.ndarray:
    """[seeds, updates] mean return of episodes finished in each update (NaN where none)."""
    sums, counts = np.asarray(metrics["episode_return_sum"]), np.asarray(metrics["episodes"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def plot_curve(curve: np.ndarray, steps_per_update: int, title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    x = (np.arange(curve.shape[1]) + 1) * steps_per_update
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no episode ended
        mean = np.nanmean(curve, axis=0)
        low, high = np.nanpercentile(curve, 2.5, axis=0), np.nanpercentile(curve, 97.5, axis=0)
    ax.plot(x, mean, label=f"mean of {curve.shape[0]} seeds")
    ax.fill_between(x, low, high, alpha=0.25, label="2.5-97.5 percentile of seeds")
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def evaluate_runs(
    make_policy: Callable,
    config: Any,
    env_name: str,
    env_overrides: dict[str, Any] | None,
    final_state: Any,
    episodes: int,
    eval_seed: int,
    deterministic: bool = True,
) -> np.ndarray:
    """Mean return of each run's final policy (``final_state`` has a leading run axis)
    over ``episodes`` episodes, one compiled call; every run gets the same eval keys,
    from ``eval_seed``, so runs differ only by their policies."""
    env, env_params = envs.make(env_name, **(env_overrides or {}))
    eval_env, _ = envs.make(env_name, autoreset=False, **(env_overrides or {}))
    gru_size = getattr(config, "gru_size", 0)
    policy_carry = jnp.zeros((episodes, gru_size)) if gru_size else None
    limit = episode_limit(eval_env, env_params)

    def evaluate_run(state, key):
        act = make_policy(config, env, env_params, state, deterministic)
        return evaluate(eval_env, env_params, act, key, episodes, limit, policy_carry).mean()

    key = jax.random.key(eval_seed)
    return np.asarray(jax.jit(jax.vmap(evaluate_run, in_axes=(0, None)))(final_state, key))


def update_steps(config: Any, env: Any, env_params: Any) -> int:
    """Env steps per update and run: ``config.steps_per_update(env, env_params)`` where the
    config defines it (CEM: a generation's episodes, each stepped to the time limit),
    else ``num_envs * rollout_len``."""
    if hasattr(config, "steps_per_update"):
        return config.steps_per_update(env, env_params)
    return config.num_envs * config.rollout_len


@rundir.locks("out")
def run(
    algo: str,
    make_train: Callable,
    config: Any,
    hparams: Any,
    env_name: str,
    num_seeds: int,
    seed: int,
    out: Path,
    steps_per_update: int | None = None,
    env_overrides: dict[str, Any] | None = None,
    make_policy: Callable | None = None,
    eval_episodes: int = 32,
    devices: int | None = None,
    extra_summary: Callable[..., dict[str, Any]] | None = None,
    checkpoint_every: int | None = None,
    max_to_keep: int = 3,
    stop_after: int | None = None,
    log_every: int = 1,
    tensorboard: bool = False,
    wandb_project: str | None = None,
    preset: presets.Preset | None = None,
) -> dict[str, Any]:
    """Train ``num_seeds`` seeds in one compiled call and write the run directory,
    holding its lock (``jaxrl.rundir``: a second process on ``out`` is refused).

    With ``checkpoint_every``, the seeds train together in compiled chunks of that
    many updates, and the complete state is saved to ``out/checkpoints`` after each
    (``max_to_keep`` kept); run again with the same arguments to resume from the
    newest one, bit for bit. ``stop_after`` ends such a run after that many updates
    in all (say, before a job's time limit), with a summary marked incomplete.
    ``log_every`` keeps one row of metrics per that many updates. Progress rows go to
    ``out/progress.csv`` and ``progress.jsonl``, and with ``tensorboard`` to
    ``out/tensorboard``, with ``wandb_project`` to Weights & Biases (local files in
    ``out/wandb``; ``WANDB_MODE=offline`` keeps them there).

    With ``make_policy`` (an agent's ``make_policy(config, env, env_params, state,
    deterministic)`` returning ``act(key, obs)``), each seed's final policy is then
    evaluated greedily on ``eval_episodes`` episodes, the same eval keys for every seed.
    The seeds are split over ``devices`` local devices (``jaxrl.parallel``; None: the
    most that divide ``num_seeds``), unless the config splits each run's envs over
    ``num_devices`` devices (data parallel), which then train every seed together.
    ``steps_per_update`` None: ``update_steps``.
    ``extra_summary(summary, config, env, env_params, final_state, hparams) -> dict``
    adds algorithm-specific fields to ``summary.json`` (``summary`` holds the common
    fields; ``final_state`` has a leading seed axis).
    """
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds} is not allowed; it must be >= 1")
    hparams.validate()
    check_chunking(config.num_updates, checkpoint_every, stop_after, log_every)
    env, env_params = envs.make(env_name, **(env_overrides or {}))
    train = dataclasses.replace(make_train(config, env, env_params), log_every=log_every)
    per_run = train.num_devices  # > 1: each run's envs are split over devices
    if per_run > 1 and devices not in (None, 1):
        raise ValueError(
            f"devices={devices} is not allowed with num_devices={per_run}: each run's envs "
            "are split over num_devices devices and the seeds are not split further; "
            "leave --devices out"
        )
    devices = 1 if per_run > 1 else parallel.devices_for(num_seeds, devices)
    if steps_per_update is None:
        steps_per_update = update_steps(config, env, env_params)
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    steps = config.num_updates * steps_per_update
    if stop_after is not None and checkpoint_every is None:
        raise ValueError(f"--stop-after={stop_after} needs --checkpoint-every, to resume from")
    # The final state is always saved (for evaluation and export from the run directory);
    # with checkpoint_every, after every chunk too.
    identity = checkpoint.run_identity(algo, env_name, env_params, config, hparams, num_seeds, seed)
    identity["log_every"] = log_every
    checkpoints = checkpoint.Checkpoints(out / "checkpoints", identity, max_to_keep)
    latest = resume_point(checkpoints, out, config.num_updates, stop_after)
    # On several processes (jaxrl.distributed) all train and save checkpoints together;
    # only process 0 prints, logs and writes the run directory's other files.
    main = distributed.is_main()
    print = builtins.print if main else (lambda *args, **kwargs: None)  # noqa: A001
    if latest is not None:
        print(f"resuming from the checkpoint at update {latest}")
    print(
        f"{algo} on {env_name}: {num_seeds} seeds x {steps:,} steps on "
        f"{devices * per_run} {jax.default_backend()} device(s), compiling ..."
    )
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "algo": algo, "env": env_name, "env_overrides": env_overrides or {},
        "num_seeds": num_seeds, "seed": seed, "log_every": log_every,
        "config": dataclasses.asdict(config),
        "hparams": {k: float(v) for k, v in hparams.asdict().items()},
        "preset": None if preset is None else preset.record(),
    }  # fmt: skip
    logs = run_loggers(out, record, tensorboard, wandb_project) if main else []
    bar = Progress(
        config.num_updates, steps_per_update, num_seeds, f"{algo} {env_name}", loggers=logs
    )
    with bar, contextlib.ExitStack() as closing:
        for log in logs:
            closing.push(_closer(log))
        try:
            final_state, metrics, info = training.train_in_chunks(
                train,
                keys,
                hparams,
                checkpoint_every or config.num_updates,
                checkpoints=checkpoints,
                until=stop_after,
                devices=devices,
                on_compiled=lambda seconds: print(f"compiled in {seconds:.1f} s; training ..."),
                describe_run=lambda i: f"seed index {i}",
            )
        except training.Diverged as exc:
            if main:  # a summary that says so and holds no result
                write_json(out / "summary.json", failed_summary(record, exc))
            raise
    compile_seconds, run_seconds = info.compile_seconds, info.run_seconds
    if jax.process_count() > 1:  # the global arrays' values, here (typed keys as key data)
        final_state = distributed.to_host(checkpoint.plain(final_state))
    updates_done = int(np.asarray(metrics["episodes"]).shape[-1]) * log_every
    eval_return, eval_per_seed = None, None
    if make_policy is not None:
        evals = evaluate_runs(
            make_policy, config, env_name, env_overrides, final_state, eval_episodes, seed + 1
        )
        eval_return, eval_per_seed = float(evals.mean()), evals.tolist()

    per_seed = final_returns(metrics)
    total_steps = updates_done * steps_per_update
    low, high = bootstrap_ci(per_seed)
    rate = (updates_done - info.start_update) * steps_per_update * num_seeds / run_seconds
    print(f"trained in {run_seconds:.1f} s ({rate:,.0f} env steps/s, all seeds)")
    print(results_table(algo, env_name, per_seed, (low, high)))
    if eval_return is not None:
        print(
            f"greedy evaluation, {eval_episodes} episodes per seed: mean return {eval_return:.1f}"
        )

    summary = {
        **record,
        "failed": None,
        "total_env_steps": total_steps,
        "complete": updates_done == config.num_updates,
        "updates_done": updates_done,
        "resumed_from_update": info.start_update,
        "final_return_mean": float(per_seed.mean()),
        "final_return_ci95": [low, high],
        "final_return_per_seed": per_seed.tolist(),
        "eval_return_mean": eval_return,
        "eval_return_per_seed": eval_per_seed,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        "env_steps_per_second": rate,
        **machine(),
        "devices_used": devices * per_run,
        "devices_per_run": per_run,
        "processes": jax.process_count(),
    }
    if extra_summary is not None:
        summary |= extra_summary(summary, config, env, env_params, final_state, hparams)
    if main:
        write_run_dir(out, summary, metrics, steps_per_update * log_every)
        print(f"wrote {out / 'summary.json'}, curve.png, curves.npz and checkpoints/")
    return summary


def resume_point(
    checkpoints: checkpoint.Checkpoints, out: Path, num_updates: int, stop_after: int | None
) -> int | None:
    """The update the run directory's newest good checkpoint holds (None: none), after
    refusing another run's checkpoints (naming what differs), a complete run, and a
    ``stop_after`` already reached. Damaged newer checkpoints are set aside."""
    latest = checkpoints.newest_good()
    if latest is not None:
        checkpoints.check(checkpoints.metadata(latest))
    if latest is not None and latest >= num_updates:
        raise ValueError(
            f"{out} already holds this run, complete ({latest} updates); choose another "
            "--out, or delete its checkpoints to train again"
        )
    if latest is not None and stop_after is not None and latest >= stop_after:
        raise ValueError(
            f"--stop-after={stop_after} is already reached: {out} holds update {latest}; "
            "raise --stop-after, or leave it out to finish the run"
        )
    return latest


def run_loggers(
    out: Path, record: dict[str, Any], tensorboard: bool, wandb_project: str | None
) -> list[loggers.Logger]:
    """The run directory's progress logs (CSV and JSON lines), plus TensorBoard and
    Weights & Biases where asked; ``record`` is the run's description."""
    logs: list[loggers.Logger] = [
        loggers.CSVLogger(out / "progress.csv"),
        loggers.JSONLLogger(out / "progress.jsonl"),
    ]
    if tensorboard:
        logs.append(loggers.TensorBoardLogger(out / "tensorboard"))
    if wandb_project:
        keys = ("algo", "env", "env_overrides", "num_seeds", "seed", "config", "hparams")
        wandb_config = {key: record[key] for key in keys}
        logs.append(loggers.WandbLogger(project=wandb_project, config=wandb_config, dir=out))
    return logs


def results_table(algo: str, env_name: str, per_seed: np.ndarray, ci: tuple) -> str:
    """The two lines printed after training: final return over seeds and its interval."""
    width = max(10, len(algo) + 2)
    head = f"{'algo':<{width}}{'env':<28}{'seeds':>6}{'final return':>14}{'95% CI':>22}"
    interval = f"[{ci[0]:.1f}, {ci[1]:.1f}]"
    row = f"{algo:<{width}}{env_name:<28}{len(per_seed):>6}{per_seed.mean():>14.1f}{interval:>22}"
    return f"{head}\n{row}"


def write_run_dir(
    out: Path, summary: dict[str, Any], metrics: dict[str, np.ndarray], steps_per_row: int
) -> None:
    """``curve.png``, ``curves.npz`` (written whole, then renamed) and ``summary.json``."""
    title = f"{summary['algo']} on {summary['env']}"
    plot_curve(learning_curve(metrics), steps_per_row, title, out / "curve.png")
    with open(out / "curves.npz.tmp", "wb") as f:
        np.savez_compressed(f, **metrics)
    (out / "curves.npz.tmp").replace(out / "curves.npz")
    write_json(out / "summary.json", summary)


def check_chunking(
    num_updates: int, checkpoint_every: int | None, stop_after: int | None, log_every: int
) -> None:
    """The run's chunking flags, refused by their flag names before anything is built
    (``training.train_in_chunks`` checks the same as ``chunk=``, ``until=``)."""
    if not isinstance(log_every, int) or log_every < 1 or num_updates % log_every:
        raise ValueError(
            f"--log-every={log_every} is not allowed; it must divide the run's "
            f"{num_updates} updates"
        )
    for flag, value in (("--checkpoint-every", checkpoint_every), ("--stop-after", stop_after)):
        if value is None:
            continue
        if not 1 <= value <= num_updates:
            raise ValueError(
                f"{flag}={value} is not allowed; it must be in [1, {num_updates}] (the "
                "run's updates)"
            )
        if value % log_every:
            raise ValueError(
                f"{flag}={value} is not allowed; it must be a multiple of --log-every="
                f"{log_every}, so that every logged interval lies within one chunk"
            )


def failed_summary(record: dict[str, Any], exc: training.Diverged) -> dict[str, Any]:
    """``summary.json`` of a run stopped by non-finite numbers: what ran and what went
    wrong (every affected run, its first bad update and quantities), no results."""
    return {
        **record,
        "complete": False,
        "failed": {
            "reason": str(exc),
            "last_good_checkpoint": exc.last_good,
            "faults": [dataclasses.asdict(fault) for fault in exc.faults],
        },
        **machine(),
    }


@dataclasses.dataclass(frozen=True)
class RunArgs:
    out: Path
    """Run directory: summary.json and curve.png."""
    env: str = "gymnax:CartPole-v1"
    """A name from envs.registered()."""
    num_seeds: int = 8
    """Seeds trained in parallel (one vmap)."""
    seed: int = 0
    """Seed of the first key; seeds are split from it."""
    devices: int | None = None
    """Local devices to split the seeds over (each trains whole runs); None: the most
    that divide num_seeds. To split each run's envs instead, see --num-devices."""
    compile_cache: bool = True
    """Keep compiled programs in jax's persistent cache (jaxrl.parallel.use_compile_cache:
    $JAXRL_CACHE_DIR, else ~/.cache/jaxrl/jax), so an identical run compiles at once;
    --no-compile-cache: off."""
    cpu_devices: int | None = None
    """CPU devices to expose before jax starts (jaxrl.parallel.use_cpu_devices); one per
    core lets seeds (--devices) or envs (--num-devices) run on separate cores of a CPU
    host. None: one per usable core on a CPU-only host (jaxrl.parallel.use_every_core),
    XLA_FLAGS's count where it sets one; --cpu-devices 1: a single device."""
    env_param: tuple[str, ...] = ()
    """Env params to override, as name=value (e.g. slip=0.2), validated by the env."""
    checkpoint_every: int | None = None
    """Train in chunks of this many updates, saving the complete state to OUT/checkpoints
    after each; rerun the same command to resume bit for bit. None: one call, no saves."""
    max_to_keep: int = 3
    """Checkpoints kept (the newest)."""
    stop_after: int | None = None
    """Stop after this many updates in all (with checkpoint_every; rerun to go on)."""
    log_every: int = 1
    """Updates per logged row of metrics (returns summed, the rest averaged)."""
    tensorboard: bool = False
    """Also log progress to OUT/tensorboard (pip install 'jaxrl[tensorboard]')."""
    wandb_project: str | None = None
    """Also log progress to this Weights & Biases project (pip install 'jaxrl[wandb]')."""
    distributed: bool = False
    """Join a run over several processes/hosts (jax.distributed) before training; the
    addresses come from --coordinator etc. or, left unset, from SLURM / Open MPI."""
    coordinator: str | None = None
    """host:port of process 0 (multi-process runs launched by hand; implies --distributed)."""
    num_processes: int | None = None
    """Processes taking part (multi-process runs launched by hand)."""
    process_id: int | None = None
    """This process's index in [0, num_processes) (multi-process runs launched by hand)."""
    preset: str = "auto"
    """Settings to start from: 'auto' (the preset for this algorithm and env, if any;
    jaxrl presets lists them), 'none' (the algorithm's defaults) or a name ALGO@ENV.
    Flags given explicitly override single fields of the preset."""


def parse_env_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("slip=0.2", "obs_mode='image'")`` -> ``{"slip": 0.2, "obs_mode": "image"}``;
    values are Python literals, numbers as ``float`` reads them (``inf``, ``nan``:
    the env's own checks decide whether they are allowed), or plain strings."""
    import ast

    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--env-param {pair!r} is not allowed; it must be name=value")
        try:
            overrides[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            try:
                overrides[name.strip()] = float(value.strip())
            except ValueError:
                overrides[name.strip()] = value.strip()
    return overrides


def env_overrides(preset: presets.Preset | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    """The env params a run overrides: the preset's (e.g. a Brax backend), then the
    ``--env-param`` pairs, which win field by field."""
    return {**(preset.env_params if preset is not None else {}), **parse_env_params(pairs)}


def space_defaults(
    config: Any,
    env_name: str,
    overrides: dict[str, Any],
    argv: list[str],
    preset: presets.Preset | None,
) -> Any:
    """``config`` with the defaults ``presets.space_defaults`` chooses from the env's
    spaces, announced: for a run whose ``--preset`` is ``auto`` and that has none
    (``--preset none`` keeps the bare defaults)."""
    choice = presets.flag_value(argv, "--preset") or presets.AUTO
    if preset is not None or choice != presets.AUTO:
        return config
    env, env_params = envs.make(env_name, **overrides)
    obs_shape = env.observation_space(env_params).shape
    continuous = isinstance(env.action_space(env_params), envs.spaces.Box)
    config, reasons = presets.space_defaults(config, obs_shape, argv, continuous)
    if reasons:
        print(f"defaults chosen from {env_name}'s spaces: {'; '.join(reasons)}")
    return config


def main(
    agent: Agent,
    extra_summary: Callable[..., dict[str, Any]] | None = None,
    argv: list[str] | None = None,
    prog: str | None = None,
) -> dict[str, Any]:
    """The command line of ``experiments/<algo>.py`` and ``jaxrl train <algo>`` for
    ``agent`` (its record, e.g. ``jaxrl.agents.ppo.AGENT``): the run flags above plus
    every config field and hyperparameter as a flag, then ``run`` (``extra_summary`` as
    there). ``argv`` None: ``sys.argv``, with errors reported as one line and an exit
    code (``clean_errors``); given, errors raise."""

    if argv is None:  # a script's command line: errors as one line (clean_errors)
        argv = sys.argv[1:]
        prog = prog or Path(sys.argv[0]).name
        with clean_errors(prog, argv):
            return main(agent, extra_summary, pop_debug(argv), prog)
    algo = agent.name
    preset, config, hparams = preset_defaults(
        algo, argv, agent.default_env, agent.Config(), agent.HParams()
    )
    args_cls = args_class(algo, agent.Config, agent.HParams, agent.default_env, config, hparams)
    args = parse_args(args_cls, argv, prog, f"Train {algo} on a registered environment.")
    distributed_run = args.distributed or args.coordinator is not None
    parallel.prepare_process(args.cpu_devices, args.compile_cache, every_core=not distributed_run)
    if distributed_run:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    overrides = env_overrides(preset, args.env_param)
    config = space_defaults(args.config, args.env, overrides, argv, preset)
    return run(
        algo, agent.make_train, config, args.hparams, args.env, args.num_seeds, args.seed,
        args.out, make_policy=agent.make_policy, devices=args.devices, extra_summary=extra_summary,
        env_overrides=overrides, checkpoint_every=args.checkpoint_every,
        max_to_keep=args.max_to_keep, stop_after=args.stop_after, log_every=args.log_every,
        tensorboard=args.tensorboard, wandb_project=args.wandb_project, preset=preset,
    )  # fmt: skip


def parse_args(args_cls: type, argv: list[str], prog: str | None, description: str | None = None):
    """``tyro.cli`` of a command line holding ``hparams``: the hyperparameters are
    built unchecked and checked after, so that a bad value gets the command line's
    one-line error (``clean_errors``) rather than tyro's box."""
    import tyro

    with H.unchecked():
        args = tyro.cli(args_cls, args=argv, prog=prog, description=description)
    args.hparams.validate()
    return args


def preset_defaults(
    algo: str, argv: list[str], default_env: str, config: Any, hparams: Any
) -> tuple[presets.Preset | None, Any, Any]:
    """``(preset, config, hparams)``: the defaults a command line starts from, with the
    preset that ``--preset`` (default ``auto``) and ``--env`` pick for ``algo`` applied
    and announced. Read from ``argv`` before tyro parses it, so that explicit flags
    override single fields of the preset."""
    env = presets.flag_value(argv, "--env") or default_env
    choice = presets.flag_value(argv, "--preset") or presets.AUTO
    try:
        preset = presets.choose(algo, env, choice)
    except ValueError as error:  # a bad flag: a usage error, as tyro's, not a traceback
        print(f"{algo}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    presets.announce(algo, env, preset, choice)
    if preset is not None:
        config, hparams = preset.apply(config, hparams)
    return preset, config, hparams


def args_class(
    algo: str,
    config_cls: type,
    hparams_cls: type,
    default_env: str = RunArgs.env,
    default_config: Any = None,
    default_hparams: Any = None,
    bases: tuple[type, ...] = (RunArgs,),
) -> type:
    """A frozen dataclass of ``bases``' flags plus ``env``, ``config`` and ``hparams``,
    the config's fields and the hyperparameters as flags without a prefix (tyro)."""
    import tyro

    env_help = tyro.conf.arg(help="A name from envs.registered().")
    return dataclasses.make_dataclass(
        f"{algo.upper()}Args",
        [
            ("env", Annotated[str, env_help], dataclasses.field(default=default_env)),
            (
                "config",
                Annotated[config_cls, tyro.conf.OmitArgPrefixes],
                dataclasses.field(default=default_config or config_cls()),
            ),
            (
                "hparams",
                Annotated[hparams_cls, tyro.conf.OmitArgPrefixes],
                dataclasses.field(default=default_hparams or hparams_cls()),
            ),
        ],
        bases=bases,
        frozen=True,
    )
