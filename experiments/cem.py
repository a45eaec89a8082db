"""The cross-entropy method (and pure random search, ``--method random_search``) over a
policy network's parameters, on any registered environment, many seeds in one
compiled call.

    python experiments/cem.py --env gymnax:CartPole-v1 --num-seeds 8 \
        --num-generations 20 --out runs/cem-cartpole

Every ``CEMConfig`` field and ``CEMHParams`` value is a flag (``--help``); an update
is a generation, and its env steps are ``population_size * episodes_per_candidate *
the time limit`` (every candidate episode is stepped to the limit).
"""

from jaxrl import experiment
from jaxrl.agents import cem

if __name__ == "__main__":
    experiment.main(cem.AGENT)
