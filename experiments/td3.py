"""TD3 on any registered environment with continuous actions, many seeds in one
compiled call; DDPG is ``--num-critics 1 --policy-delay 1 --target-noise 0``.

    python experiments/td3.py --env gymnax:Pendulum-v1 --num-seeds 4 \
        --total-steps 50000 --hidden-sizes 64 64 --learning-starts 1000 --lr 1e-3 \
        --out runs/td3-pendulum

Every ``TD3Config`` field and ``TD3HParams`` value is a flag (``--help``);
``jaxrl.experiment`` holds what all training scripts share.
"""

from jaxrl import experiment
from jaxrl.agents import td3

if __name__ == "__main__":
    experiment.main(td3.AGENT)
