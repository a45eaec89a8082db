"""PQN (parallel Q(lambda) learning, no replay, no target network) on any
registered environment with discrete actions, many seeds in one compiled call.

    python experiments/pqn.py --env gymnax:CartPole-v1 --num-seeds 8 \
        --total-steps 500000 --out runs/pqn-cartpole

Every ``PQNConfig`` field and ``PQNHParams`` value is a flag (``--help``);
``jaxrl.experiment`` holds what all training scripts share.
"""

from jaxrl import experiment
from jaxrl.agents import pqn

if __name__ == "__main__":
    experiment.main(pqn.AGENT)
