"""The task's colour words, without MuJoCo: the other cube's, and the colour swap.

The swap is the language control: `openvla-sim-eval --swap-colours` and the benches that
evaluate recorded episodes, which need no simulator, use it.
"""

from openvla_ros.sim.scene import COLOURS


def other_colour(colour: str, colours=tuple(COLOURS)) -> str:
    """Return the colour of the other cube (two colours)."""
    first, second = colours
    if colour not in colours:
        raise ValueError(f'{colour!r}: expected one of {colours}')
    return second if colour == first else first


def swap_colour(instruction: str, colours=tuple(COLOURS)) -> str:
    """Replace the colour word of `instruction` with the other colour (two colours).

    Raises ValueError when the instruction names neither colour.
    """
    words = instruction.split(' ')
    swapped = [other_colour(w, colours) if w in colours else w for w in words]
    if swapped == words:
        raise ValueError(f'no colour word in {instruction!r}')
    return ' '.join(swapped)
