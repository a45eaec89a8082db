"""DQN (and Double DQN, dueling, n-step, prioritised replay as flags) on any
registered environment with discrete actions, many seeds in one compiled call.

    python experiments/dqn.py --env gymnax:CartPole-v1 --num-seeds 8 \
        --total-steps 500000 --out runs/dqn-cartpole

Every ``DQNConfig`` field and ``DQNHParams`` value is a flag (``--help``);
``jaxrl.experiment`` holds what all training scripts share.
"""

from jaxrl import experiment
from jaxrl.agents import dqn

if __name__ == "__main__":
    experiment.main(dqn.AGENT)
