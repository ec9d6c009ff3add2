"""Pictures of closed-loop episodes: an animated GIF and end-effector paths per instruction."""

import pathlib
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image, ImageDraw

from openvla_ros.sim import scene


def write_gif(path, frames: Sequence[np.ndarray], caption: str, fps: float = 20.0,
              scale: int = 3) -> pathlib.Path:
    """Write `frames` (uint8 H x W x 3) upscaled `scale` times with a caption bar."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = []
    for index, frame in enumerate(frames):
        height, width = frame.shape[:2]
        image = Image.new('RGB', (width * scale, height * scale + 18), (20, 20, 20))
        image.paste(Image.fromarray(frame).resize((width * scale, height * scale),
                                                  Image.NEAREST), (0, 18))
        ImageDraw.Draw(image).text((4, 3), f'{caption}  t={index / fps:4.2f}s',
                                   fill=(235, 235, 235))
        images.append(image)
    images[0].save(path, save_all=True, append_images=images[1:],
                   duration=int(round(1000 / fps)), loop=0)
    return path


def write_paths_png(path, episodes: List[Dict]) -> pathlib.Path:
    """Top view of the EEF paths, one panel per instruction.

    Each episode dict holds 'instruction', 'path' (T, 3), 'cubes' {colour: (x, y)}, 'target'
    (the colour the episode is scored on) and 'success'.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    instructions = sorted({e['instruction'] for e in episodes})
    columns = min(3, len(instructions))
    rows = -(-len(instructions) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 4 * rows), squeeze=False)
    for axis in axes.flat[len(instructions):]:
        axis.axis('off')
    for axis, instruction in zip(axes.flat, instructions):
        group = [e for e in episodes if e['instruction'] == instruction]
        wins = sum(e['success'] for e in group)
        for episode in group:
            xy = np.asarray(episode['path'])[:, :2]
            colour = scene.COLOURS[episode['target']]
            axis.plot(xy[:, 1], xy[:, 0], '-' if episode['success'] else ':', color=colour,
                      alpha=0.8, lw=1.2)
            axis.plot(xy[0, 1], xy[0, 0], 'o', color='k', ms=3)
            for name, (x, y) in episode['cubes'].items():
                axis.plot(y, x, 's', color=scene.COLOURS[name], ms=7,
                          mec='k' if name == episode['target'] else 'none', alpha=0.6)
        axis.set_title(f'"{instruction}": {wins}/{len(group)}', fontsize=9)
        axis.set_xlim(-0.2, 0.2)        # as the camera sees it: +y right, -x up
        axis.set_ylim(0.18, -0.18)
        axis.set_aspect('equal')
        axis.set_xlabel('y (m)')
        axis.set_ylabel('x (m)')
    figure.suptitle('end-effector paths (top view; solid: success, dotted: failure; '
                    'outlined square: the scored cube)', fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
