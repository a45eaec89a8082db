"""PPO on any registered environment, many seeds in one compiled call.

    python experiments/ppo.py --env gymnax:CartPole-v1 --num-seeds 8 \
        --total-steps 500000 --out runs/ppo-cartpole

Every ``PPOConfig`` field and ``PPOHParams`` value is a flag (``--help``);
``jaxrl.experiment`` holds what all training scripts share.
"""

from jaxrl import experiment
from jaxrl.agents import ppo

if __name__ == "__main__":
    experiment.main(ppo.AGENT)
