"""Deep Expected SARSA (or SARSA, ``--bootstrap sarsa``) on any registered
environment with discrete actions: PQN's vectorized machinery with an on-policy
bootstrap, many seeds in one compiled call.

    python experiments/sarsa.py --env GridWorld-FourRooms --num-seeds 8 --out runs/sarsa

Every ``PQNConfig`` field and ``PQNHParams`` value is a flag (``--help``).
"""

import dataclasses
from typing import Literal

from jaxrl import experiment
from jaxrl.agents import pqn


@dataclasses.dataclass(frozen=True)
class SARSAConfig(pqn.PQNConfig):
    bootstrap: Literal["max", "expected", "sarsa"] = "expected"
    """Value of the next state: "expected" (Expected SARSA under the epsilon-greedy
    policy), "sarsa" (Q of the next action taken) or "max" (Q-learning)."""


if __name__ == "__main__":
    experiment.main("sarsa", SARSAConfig, pqn.PQNHParams, pqn.make_train, pqn.make_policy)
