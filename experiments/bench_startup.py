"""Whole-process time to a first result: ``jaxrl train`` against rejax, the same work.

The work: PPO on gymnax CartPole-v1, 1 seed, rejax 0.1.3's shipped CartPole config
(5 envs x 100 steps, 100k env steps; jaxrl's preset mirrors it field by field),
then 32 evaluation episodes of the trained policy. Each measurement is a fresh
process, timed by this script from the moment it starts the process until it
exits:

- ``jaxrl cold``: ``jaxrl train ppo --env gymnax:CartPole-v1 --num-seeds 1 --out D``
  as a user types it, with ``JAXRL_CACHE_DIR`` a new, empty directory (the first
  run on a machine); it also writes the run directory (summary, curves, plot,
  final checkpoint);
- ``jaxrl warm``: the same command again, on the cache the cold run filled (every
  later run);
- ``rejax``: a process that imports rejax, builds the algorithm from that config,
  trains one seed (``jit(vmap(algo.train))``, rejax's own route) and evaluates 32
  episodes with rejax's ``evaluate``, printing the mean; rejax has no compile cache
  and writes no files.

Each runs ``--repeats`` times, interleaved (cold, warm, rejax, cold, ...), and
the medians are reported with their ratios. For jaxrl, where the time goes is
read from the lines it prints, stamped as they arrive: start-up (imports,
arguments, env, preset and checkpoint set-up, until ``compiling ...``), compile
(until ``compiled in``), training and evaluation (until the result table),
writing the run directory (until ``wrote``) and exiting.

rejax needs ``pip install -e ".[bench]"``.

    python experiments/bench_startup.py --out runs/bench-startup
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tyro

EXPERIMENTS = Path(__file__).resolve().parent
PAIR = "ppo@gymnax:CartPole-v1"
EVAL_EPISODES = 32
COMMAND = ["jaxrl", "train", "ppo", "--env", "gymnax:CartPole-v1", "--num-seeds", "1"]

REJAX_PROCESS = f"""
import json, sys
sys.path.insert(0, {str(EXPERIMENTS)!r})
import jax
from rejax.evaluate import evaluate
from rejax_shim import REJAX, create

algo = create("ppo", "gymnax:CartPole-v1", REJAX[{PAIR!r}][1])
ts, _ = jax.jit(jax.vmap(algo.train))(jax.random.split(jax.random.key(0), 1))
ts = jax.tree.map(lambda x: x[0], ts)
_, returns = evaluate(algo.make_act(ts), jax.random.key(1), algo.env, algo.env_params,
                      {EVAL_EPISODES}, algo.env_params.max_steps_in_episode)
print(json.dumps({{"eval_return": float(returns.mean())}}))
"""

MARKS = {"compiling ...": "start_up", "compiled in": "compile", "final return": "train_and_eval",
         "wrote ": "write"}  # fmt: skip
"""The line (substring) that ends each phase of a ``jaxrl train`` process."""


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for bench_startup.json and summary.json."""
    repeats: int = 3
    """Processes per kind (medians reported)."""
    libs: tuple[str, ...] = ("jaxrl", "rejax")
    """Which libraries to run."""


def timed_process(cmd: list[str], env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """Seconds from starting ``cmd`` until it exits, and its output lines (stdout and
    stderr) with the second each arrived at; a failed process stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    )
    lines = [(time.perf_counter() - start, line.rstrip()) for line in proc.stdout]
    code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(line for _, line in lines[-30:])
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}):\n{tail}")
    return wall, lines


def phases(wall: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds per phase of a ``jaxrl train`` process, from its stamped lines (``MARKS``)."""
    ends, last = {}, 0.0
    for mark, phase in MARKS.items():
        at = next(t for t, line in lines if mark in line)
        ends[phase], last = at - last, at
    return ends | {"exit": wall - last}


def run_jaxrl(cache: Path, out: Path) -> dict[str, object]:
    env = dict(os.environ, JAXRL_CACHE_DIR=str(cache), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "jaxrl.cli", *COMMAND[1:], "--out", str(out)]
    wall, lines = timed_process(cmd, env)
    summary = json.loads((out / "summary.json").read_text())
    return {"wall_seconds": wall, "phases": phases(wall, lines),
            "compile_seconds": summary["compile_seconds"],
            "eval_return": summary["eval_return_mean"]}  # fmt: skip


def run_rejax() -> dict[str, object]:
    wall, lines = timed_process([sys.executable, "-c", REJAX_PROCESS], dict(os.environ))
    result = json.loads(next(line for _, line in reversed(lines) if line.startswith("{")))
    return {"wall_seconds": wall, "eval_return": result["eval_return"]}


def main(args: Args) -> None:
    sys.path.insert(0, str(EXPERIMENTS))
    from rejax_shim import check_libs

    check_libs(args.libs, "--repeats", args.repeats)
    from jaxrl import experiment  # after the checks: a bad flag fails fast

    args.out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            if "jaxrl" in args.libs:
                cache = Path(scratch) / f"cache{repeat}"
                for kind in ("cold", "warm"):
                    out = Path(scratch) / f"run{repeat}-{kind}"
                    runs.setdefault(f"jaxrl {kind}", []).append(run_jaxrl(cache, out))
            if "rejax" in args.libs:
                runs.setdefault("rejax", []).append(run_rejax())
            print(
                f"repeat {repeat + 1}/{args.repeats}: "
                + "  ".join(f"{kind} {r[-1]['wall_seconds']:.2f} s" for kind, r in runs.items()),
                flush=True,
            )
    medians = {kind: statistics.median(r["wall_seconds"] for r in rs) for kind, rs in runs.items()}
    result = {"medians": medians}
    for kind, rs in runs.items():
        if "phases" in rs[0]:
            names = rs[0]["phases"]
            result[f"{kind} phases"] = {
                phase: statistics.median(r["phases"][phase] for r in rs) for phase in names
            }
    if "rejax" in medians:
        result["rejax_over"] = {
            kind: medians["rejax"] / seconds for kind, seconds in medians.items() if kind != "rejax"
        }
    for kind, seconds in medians.items():
        returns = [r["eval_return"] for r in runs[kind]]
        print(f"{kind:<12} {seconds:6.2f} s (median of {len(returns)}), eval return {returns}")
    for kind in ("jaxrl cold", "jaxrl warm"):
        if f"{kind} phases" in result:
            text = ", ".join(f"{p} {s:.2f}" for p, s in result[f"{kind} phases"].items())
            print(f"{kind} phases (s): {text}")
    meta = experiment.machine()
    command = " ".join(COMMAND) + " --out DIR"
    summary = {"script": "bench_startup", "pair": PAIR, "jaxrl_command": command,
               "repeats": args.repeats, **result, **meta}  # fmt: skip
    experiment.write_json(args.out / "bench_startup.json", {"runs": runs, **summary})
    experiment.write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out}/bench_startup.json and summary.json")


if __name__ == "__main__":
    main(tyro.cli(Args))
