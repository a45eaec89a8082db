"""SAC on any registered environment, continuous actions (tanh-Gaussian policy) or
discrete ones (exact expectations over actions), many seeds in one compiled call.

    python experiments/sac.py --env gymnax:Pendulum-v1 --num-seeds 4 \
        --total-steps 50000 --hidden-sizes 64 64 --learning-starts 1000 --lr 1e-3 \
        --out runs/sac-pendulum

Every ``SACConfig`` field and ``SACHParams`` value is a flag (``--help``);
``jaxrl.experiment`` holds what all training scripts share.
"""

from jaxrl import experiment
from jaxrl.agents import sac

if __name__ == "__main__":
    experiment.main(sac.AGENT)
