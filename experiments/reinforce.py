"""REINFORCE on any registered environment, many seeds in one compiled call.

    python experiments/reinforce.py --env gymnax:CartPole-v1 --num-seeds 8 \
        --total-steps 500000 --out runs/reinforce-cartpole

Every ``ReinforceConfig`` field and ``ReinforceHParams`` value is a flag (``--help``);
``jaxrl.experiment`` holds what all training scripts share.
"""

from jaxrl import experiment
from jaxrl.agents import reinforce

if __name__ == "__main__":
    experiment.main(reinforce.AGENT)
