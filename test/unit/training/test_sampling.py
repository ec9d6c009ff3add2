"""Batch sampling: upstream's uniform epochs, and oversampling the start of each episode."""

import numpy as np
import pytest

from openvla_ros.training.trainer import BatchSampler, sample_weights, TrainConfig


class _Starts:
    """A dataset stand-in: only `chunk_starts` matters to `sample_weights`."""

    def __init__(self, starts):
        self.chunk_starts = np.array(starts)


def test_uniform_epochs_draw_every_sample_once_per_epoch():
    sampler = BatchSampler(10, 4, seed=3)
    drawn = [index for _ in range(5) for index in sampler.next()]  # 20 = two epochs
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:]) == list(range(10))


def test_weighted_draws_follow_the_weights_and_are_seeded():
    weights = np.array([3.0, 1.0, 0.0, 1.0])
    first, second = (BatchSampler(4, 4, seed=1, weights=weights) for _ in range(2))
    assert [first.next() for _ in range(3)] == [second.next() for _ in range(3)]
    sampler = BatchSampler(4, 4, seed=0, weights=weights)
    counts = np.bincount(np.concatenate([sampler.next() for _ in range(2000)]), minlength=4)
    assert counts[2] == 0  # weight 0: never drawn
    np.testing.assert_allclose(counts / counts.sum(), weights / weights.sum(), atol=0.02)


def test_oversampling_weights_the_first_steps_of_each_episode():
    starts = _Starts([0, 1, 2, 3, 4, 0, 1])  # two episodes
    config = TrainConfig(oversample_first=2, oversample_factor=4.0)
    assert sample_weights(starts, config).tolist() == [4, 4, 1, 1, 1, 4, 4]
    assert sample_weights(starts, TrainConfig()) is None  # upstream: uniform epochs
    assert sample_weights(starts, TrainConfig(oversample_first=2)) is None


@pytest.mark.parametrize('first, factor', [(-1, 2.0), (2, 0.0), (2, -1.0)])
def test_bad_oversampling_settings_are_rejected(first, factor):
    with pytest.raises(ValueError, match='oversample'):
        TrainConfig(oversample_first=first, oversample_factor=factor)


def test_bad_weights_are_rejected():
    with pytest.raises(ValueError, match='weights'):
        BatchSampler(3, 2, seed=0, weights=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match='weights'):
        BatchSampler(3, 2, seed=0, weights=np.zeros(2))


def test_oversampling_can_end_after_some_steps():
    config = TrainConfig(steps=10, oversample_first=1, oversample_factor=5.0, oversample_steps=4)
    assert [config.oversamples_at(step) for step in range(6)] == [True] * 4 + [False] * 2
    whole_run = TrainConfig(steps=10, oversample_first=1, oversample_factor=5.0)
    assert all(whole_run.oversamples_at(step) for step in range(10))
    with pytest.raises(ValueError, match='oversample_steps'):
        TrainConfig(oversample_steps=-1)


def test_a_shorter_run_follows_the_longer_schedule_step_for_step():
    """--schedule-steps: stopping at step 1000 of a 1500-step cosine, as its interim save."""
    long_run = TrainConfig(steps=1500, learning_rate=1e-3, warmup_steps=100, schedule='cosine')
    stopped = TrainConfig(steps=1000, learning_rate=1e-3, warmup_steps=100, schedule='cosine',
                          schedule_steps=1500)
    assert [stopped.learning_rate_at(s) for s in range(1000)] \
        == [long_run.learning_rate_at(s) for s in range(1000)]
    assert stopped.learning_rate_at(999) > 3e-4  # part-way down, not at the 10 % floor
    assert TrainConfig(steps=1000, schedule='cosine').learning_rate_at(999) < 1.1e-4
    with pytest.raises(ValueError, match='schedule_steps'):
        TrainConfig(steps=1000, schedule_steps=999)
