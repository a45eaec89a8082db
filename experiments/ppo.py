"""PPO on any registered environment, many seeds in one compiled call.

    python experiments/ppo.py --env gymnax:CartPole-v1 --num-seeds 8 \
        --total-steps 500000 --out runs/ppo-cartpole

Every ``PPOConfig`` field and ``PPOHParams`` value is a flag (``--help``).
"""

import dataclasses
from pathlib import Path
from typing import Annotated

import tyro

from jaxrl import experiment
from jaxrl.agents import ppo


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Run directory: summary.json and curve.png."""
    env: str = "gymnax:CartPole-v1"
    """A name from envs.registered()."""
    num_seeds: int = 8
    """Seeds trained in parallel (one vmap)."""
    seed: int = 0
    """Seed of the first key; seeds are split from it."""
    config: Annotated[ppo.PPOConfig, tyro.conf.OmitArgPrefixes] = ppo.PPOConfig()
    hparams: Annotated[ppo.PPOHParams, tyro.conf.OmitArgPrefixes] = ppo.PPOHParams()


def main(args: Args) -> None:
    experiment.run(
        "ppo",
        ppo.make_train,
        args.config,
        args.hparams,
        args.env,
        args.num_seeds,
        args.seed,
        args.out,
        steps_per_update=args.config.batch_size,
    )


if __name__ == "__main__":
    main(tyro.cli(Args))
