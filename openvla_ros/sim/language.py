"""The task's colour words, without MuJoCo: the swap behind the language control.

Used by `openvla-sim-eval --swap-colours` and the benches that evaluate recorded episodes, which
need no simulator.
"""

from openvla_ros.sim.scene import COLOURS


def swap_colour(instruction: str, colours=tuple(COLOURS)) -> str:
    """Replace the colour word of `instruction` with the other colour (two colours).

    Raises ValueError when the instruction names neither colour.
    """
    first, second = colours
    words = instruction.split(' ')
    swapped = [second if w == first else first if w == second else w for w in words]
    if swapped == words:
        raise ValueError(f'no colour word in {instruction!r}')
    return ' '.join(swapped)
