"""What makes two runs of the same command differ: the CPU's instruction set, the
cores a process may use, or nothing (a rerun).

Each setting trains TRPO and PPO on gymnax CartPole (2 vmapped seeds, default
configs) in a fresh process and fingerprints the final parameters (SHA-256 of
their bytes); ``summary.json`` says, per setting, whether each agent's
parameters are bit-identical to the default setting's, and its final return.
Settings: ``default``; ``rerun`` (the same again); ``avx2`` and ``sse4_2`` (XLA:CPU
told to use at most that instruction set, as on an older CPU: ``XLA_FLAGS=
--xla_cpu_max_isa=...``); ``one_core`` (the process pinned to one core, as on a
1-core machine: XLA:CPU then splits its work over one thread instead of two).

    python experiments/reproducibility.py --out runs/repro
    python experiments/reproducibility.py --total-steps 500000 --out runs/repro-long

To compare package versions, run it once per environment and compare the
``default`` fingerprints in the two summaries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import tyro

SETTINGS = {
    "default": {},
    "rerun": {},
    "avx2": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
    "sse4_2": {"XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2"},
    "one_core": {},
}


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for summary.json."""
    total_steps: int = 20 * 1024
    """Env steps per seed for each agent (a multiple of 1024)."""
    settings: tuple[str, ...] = tuple(SETTINGS)
    """Which settings to run (the first is the reference)."""
    child: bool = False
    """Internal: train in this process and print the fingerprints as JSON."""


def train_and_fingerprint(total_steps: int) -> dict[str, dict]:
    import jax
    import numpy as np

    import envs
    from jaxrl.agents import ppo, trpo
    from jaxrl.experiment import final_returns

    env, params = envs.make("gymnax:CartPole-v1")
    runs = {
        "trpo": (trpo, trpo.TRPOConfig(total_steps=total_steps), trpo.TRPOHParams()),
        "ppo": (ppo, ppo.PPOConfig(total_steps=total_steps), ppo.PPOHParams()),
    }
    out = {}
    for name, (agent, config, hparams) in runs.items():
        train = jax.jit(jax.vmap(agent.make_train(config, env, params), in_axes=(0, None)))
        state, metrics = train(jax.random.split(jax.random.key(0), 2), hparams)
        leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(state.params)]
        digest = hashlib.sha256(b"".join(leaf.tobytes() for leaf in leaves)).hexdigest()
        out[name] = {"params_sha256": digest, "final_return": float(final_returns(metrics).mean())}
    return out


def run_setting(name: str, total_steps: int) -> dict:
    env = {**os.environ, **SETTINGS[name]}
    cmd = [sys.executable, __file__, "--child", "--total-steps", str(total_steps), "--out", "-"]
    one_core = {min(os.sched_getaffinity(0))}
    pin = (lambda: os.sched_setaffinity(0, one_core)) if name == "one_core" else None
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=pin)
    if result.returncode:
        raise RuntimeError(f"setting {name} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(args: Args) -> dict:
    if args.child:
        print(json.dumps(train_and_fingerprint(args.total_steps)))
        return {}
    unknown = sorted(set(args.settings) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"--settings {unknown} are not allowed; choose from {list(SETTINGS)}")
    if args.total_steps < 1024 or args.total_steps % 1024:
        raise SystemExit(
            f"--total-steps {args.total_steps} is not allowed; it must be a positive multiple "
            "of 1024 (one TRPO update of 8 envs x 128 steps)"
        )
    from jaxrl.experiment import write_json
    from jaxrl.provenance import machine

    results = {name: run_setting(name, args.total_steps) for name in args.settings}
    reference = results[args.settings[0]]
    for name, agents in results.items():
        for agent, result in agents.items():
            result["bit_identical"] = result["params_sha256"] == reference[agent]["params_sha256"]
            print(f"{name:<10}{agent:<6}{result['params_sha256'][:12]}  identical to "
                  f"{args.settings[0]}: {result['bit_identical']!s:<6} final return "
                  f"{result['final_return']:.1f}")  # fmt: skip
    summary = {
        "script": "reproducibility",
        "total_env_steps": args.total_steps,
        "num_seeds": 2,
        "reference": args.settings[0],
        "settings": {name: SETTINGS[name] for name in args.settings},
        "results": results,
        **machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main(tyro.cli(Args))
