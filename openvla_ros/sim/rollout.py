"""Run the (noisy) scripted expert for one episode and record it."""

import numpy as np

from openvla_ros.sim.env import CubesEnv, MAX_STEPS
from openvla_ros.sim.episodes import Episode
from openvla_ros.sim.expert import Expert, NoisyExpert

STEPS_AFTER_SUCCESS = 4     # keep lifting a little once the cube is up (the policy learns to)


def expert_episode(env: CubesEnv, seed: int, noise: bool = True,
                   record_images: bool = True) -> Episode:
    """Roll out the expert from `seed`'s initial state; record what it saw and the clean action.

    With `noise`, the executed action is the expert's plus noise (seeded by `seed` too), and the
    recorded one is the clean expert action for the state actually reached.
    """
    env.reset(seed)
    expert = NoisyExpert(np.random.default_rng([seed, 1])) if noise else Expert()
    images, proprio, actions = [], [], []
    left = None
    while env.steps < MAX_STEPS and left != 0:
        if record_images:
            images.append(env.render())
        proprio.append(env.proprio())
        if noise:
            clean, executed = expert.act(env)
        else:
            clean = executed = expert.act(env)
        actions.append(clean)
        env.step(executed)
        if left is None and env.success():
            left = STEPS_AFTER_SUCCESS
        elif left:
            left -= 1
    size = env.image_size
    image_array = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return Episode(image_array, np.stack(proprio), np.stack(actions).astype(np.float32),
                   env.task.instruction, env.success(), seed)
