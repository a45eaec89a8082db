"""TRPO on any registered environment, many seeds in one compiled call.

    python experiments/trpo.py --env gymnax:CartPole-v1 --num-seeds 8 \
        --total-steps 500000 --out runs/trpo-cartpole

Every ``TRPOConfig`` field and ``TRPOHParams`` value is a flag (``--help``);
``jaxrl.experiment`` holds what all training scripts share.
"""

from jaxrl import experiment
from jaxrl.agents import trpo

if __name__ == "__main__":
    experiment.main(trpo.AGENT)
