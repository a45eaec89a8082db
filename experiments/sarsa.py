"""Deep Expected SARSA (or SARSA, ``--bootstrap sarsa``) on any registered
environment with discrete actions: PQN's vectorized machinery with an on-policy
bootstrap, many seeds in one compiled call.

    python experiments/sarsa.py --env GridWorld-FourRooms --num-seeds 8 --out runs/sarsa

Every ``SARSAConfig`` field and ``PQNHParams`` value is a flag (``--help``).
"""

from jaxrl import experiment
from jaxrl.agents import pqn

if __name__ == "__main__":
    experiment.main(pqn.SARSA)
