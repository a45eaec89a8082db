"""A2C on any registered environment, many seeds in one compiled call.

    python experiments/a2c.py --env gymnax:CartPole-v1 --num-seeds 8 \
        --total-steps 500000 --out runs/a2c-cartpole

Every ``A2CConfig`` field and ``A2CHParams`` value is a flag (``--help``);
``jaxrl.experiment`` holds what all training scripts share.
"""

from jaxrl import experiment
from jaxrl.agents import a2c

if __name__ == "__main__":
    experiment.main(a2c.AGENT)
