"""Loss curve PNG of a training run (matplotlib, headless)."""

import pathlib


def plot_losses(log: dict, path) -> pathlib.Path:
    """Plot `log['losses']` ([step, loss, objective] rows) per objective, log scale.

    A moving average (window 50) is drawn over the raw losses; open-loop evaluations in
    `log['evaluations']` are marked on the same axes.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot
    import numpy as np

    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    rows = log['losses']
    for objective in sorted({row[2] for row in rows}):
        steps = np.array([row[0] for row in rows if row[2] == objective])
        losses = np.array([row[1] for row in rows if row[2] == objective])
        window = min(50, len(losses))
        line, = axes.plot(steps, losses, alpha=0.25, linewidth=0.8,
                          label=None if window > 1 else f'{objective} loss')
        if window > 1:
            smooth = np.convolve(losses, np.ones(window) / window, mode='valid')
            axes.plot(steps[window - 1:], smooth, color=line.get_color(),
                      label=f'{objective} loss (mean of {window})')
    evaluations = log.get('evaluations') or []
    if evaluations:
        axes.plot([e['step'] for e in evaluations], [e['l1'] for e in evaluations], 'ko-',
                  markersize=4, label='held-out open-loop L1')
    axes.set_yscale('log')
    axes.set_xlabel('step')
    axes.set_ylabel('loss (normalized actions)')
    axes.grid(True, which='both', alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = pathlib.Path(path)
    figure.savefig(path)
    pyplot.close(figure)
    return path
