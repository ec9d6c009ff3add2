"""normalization.py: dataset statistics and OFT (un)normalization (reference 6.4 and 6.5)."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from openvla_ros.normalization import (
    ArrayStats, DatasetStats, load_dataset_statistics, NormalizationError, NormalizationType,
    normalize_proprio, resolve_unnorm_key, unnormalize_actions)

# A LIBERO-shaped entry: 7-dim actions with the gripper left raw, 8-dim proprio without a mask.
LIBERO_LIKE = {
    'action': {
        'mean': [0.06, 0.09, -0.1, 0.0, 0.0, -0.005, -0.2],
        'std': [0.3, 0.35, 0.4, 0.04, 0.06, 0.08, 0.97],
        'min': [-0.9375, -0.9375, -0.9375, -0.2, -0.36, -0.375, -1.0],
        'max': [0.9375, 0.9375, 0.9375, 0.2, 0.36, 0.375, 1.0],
        'q01': [-0.75, -0.8, -0.9, -0.1, -0.2, -0.25, -1.0],
        'q99': [0.8, 0.85, 0.9375, 0.15, 0.25, 0.3, 1.0],
        'mask': [True, True, True, True, True, True, False],
    },
    'proprio': {
        'mean': [0.0] * 8, 'std': [1.0] * 8,
        'min': [-0.5, -0.3, 0.0, 3.0, -1.0, -0.5, 0.0, -0.04],
        'max': [0.2, 0.4, 1.3, 3.3, 1.0, 0.5, 0.04, 0.0],
        'q01': [-0.4, -0.25, 0.01, 3.05, -0.9, -0.4, 0.001, -0.039],
        'q99': [0.15, 0.35, 1.2, 3.25, 0.9, 0.45, 0.039, -0.001],
    },
    'num_transitions': 52970,
    'num_trajectories': 432,
}


def _stats(low, high, mask=None):
    low, high = list(low), list(high)
    return ArrayStats(mean=low, std=high, min=low, max=high, q01=low, q99=high, mask=mask)


def test_unnormalize_hand_computed_values():
    stats = _stats([-1.0, 0.0, 10.0], [1.0, 2.0, 20.0])
    actions = unnormalize_actions([[-1.0, 0.0, 1.0], [0.0, 0.5, -0.5]], stats, 'bounds')
    # 0.5 * (a + 1) * (high - low + 1e-8) + low, per element
    expected = [[-1.0, 1.0 + 0.5e-8, 20.0 + 1e-8],
                [0.5e-8, 1.5 + 0.75e-8, 12.5 + 0.25e-8]]
    assert actions.dtype == np.float64
    np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-15)


def test_unnormalize_bounds_type_picks_min_max_or_quantiles():
    stats = ArrayStats.from_dict(LIBERO_LIKE['action'])
    ones = np.ones(7)
    q99 = unnormalize_actions(ones, stats, NormalizationType.BOUNDS_Q99)
    bounds = unnormalize_actions(ones, stats, NormalizationType.BOUNDS)
    # a = 1 maps to high (+1e-8) on normalized dims; the unmasked gripper stays 1.
    np.testing.assert_allclose(q99[:6], np.array(LIBERO_LIKE['action']['q99'][:6]) + 1e-8,
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(bounds[:6], np.array(LIBERO_LIKE['action']['max'][:6]) + 1e-8,
                               rtol=0, atol=1e-15)
    assert q99[6] == 1.0 and bounds[6] == 1.0


def test_unnormalize_mask_leaves_dims_raw_and_does_not_clip():
    stats = _stats([0.0, 0.0], [4.0, 4.0], mask=[True, False])
    actions = unnormalize_actions([[3.0, 3.0], [-2.5, -2.5]], stats, 'bounds_q99')
    np.testing.assert_allclose(actions[:, 0], [8.0, -3.0], atol=1e-7)  # outside [0, 4]: kept
    np.testing.assert_array_equal(actions[:, 1], [3.0, -2.5])


def test_unnormalize_float32_input_rounds_like_upstream():
    # Upstream computes 0.5 * (a + 1) on the float32 model output before the float64 product:
    # float32(1e-8) + 1 rounds to exactly 1.0, so the result is exactly the midpoint.
    stats = _stats([2.0], [6.0])
    tiny = np.array([1e-8], dtype=np.float32)
    assert unnormalize_actions(tiny, stats, 'bounds')[0] == 0.5 * (4.0 + 1e-8) + 2.0
    # The same value in float64 keeps its contribution.
    assert unnormalize_actions(tiny.astype(np.float64), stats, 'bounds')[0] > 4.0 + 0.5e-8


def test_unnormalize_keeps_leading_shape():
    stats = ArrayStats.from_dict(LIBERO_LIKE['action'])
    chunk = np.linspace(-1, 1, 2 * 8 * 7).reshape(2, 8, 7)
    assert unnormalize_actions(chunk, stats, 'bounds_q99').shape == (2, 8, 7)


@pytest.mark.parametrize('shape', [(6,), (8, 8), ()])
def test_unnormalize_rejects_wrong_dimension(shape):
    stats = ArrayStats.from_dict(LIBERO_LIKE['action'])
    message = r'expected normalized actions with last dimension 7 .*got shape'
    with pytest.raises(NormalizationError, match=message):
        unnormalize_actions(np.zeros(shape), stats, 'bounds')


def test_normal_and_unknown_types_raise():
    stats = _stats([0.0], [1.0])
    with pytest.raises(NormalizationError, match="got 'normal'"):
        unnormalize_actions([0.0], stats, NormalizationType.NORMAL)
    with pytest.raises(NormalizationError, match="got 'normal'"):
        normalize_proprio([0.0], stats, 'normal')
    with pytest.raises(NormalizationError, match=r"expected normalization type in .*got 'q99'"):
        unnormalize_actions([0.0], stats, 'q99')


def test_normalize_proprio_hand_computed_and_clipped():
    stats = _stats([0.0, -2.0, 1.0], [10.0, 2.0, 1.0])
    out = normalize_proprio([[2.5, 1.0, 1.0], [12.0, -3.0, 1.0]], stats, 'bounds')
    # 2 * (x - low) / (high - low + 1e-8) - 1; a constant dim gives 2*0/1e-8 - 1 = -1.
    expected = [[2 * 2.5 / (10 + 1e-8) - 1, 2 * 3.0 / (4 + 1e-8) - 1, -1.0],
                [1.0, -1.0, -1.0]]
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-15)


def test_normalize_proprio_uses_quantiles_for_q99_and_honours_a_mask():
    stats = ArrayStats.from_dict(LIBERO_LIKE['proprio'])
    q01 = np.array(LIBERO_LIKE['proprio']['q01'])
    q99 = np.array(LIBERO_LIKE['proprio']['q99'])
    np.testing.assert_allclose(normalize_proprio(q01, stats, 'bounds_q99'), -1.0, atol=1e-12)
    # 1e-8 in the denominator: off by 1e-8 / (q99 - q01) * 2 at most 5.3e-7 for the gripper dims
    np.testing.assert_allclose(normalize_proprio(q99, stats, 'bounds_q99'), 1.0, atol=6e-7)
    masked = _stats([0.0, 0.0], [1.0, 1.0], mask=[False, True])
    np.testing.assert_allclose(normalize_proprio([0.25, 0.25], masked, 'bounds'),
                               [0.25, -0.5], atol=1e-7)


def test_normalize_proprio_rejects_wrong_dimension():
    stats = ArrayStats.from_dict(LIBERO_LIKE['proprio'])
    message = r'expected proprio with last dimension 8 .*got shape \(7,\)'
    with pytest.raises(NormalizationError, match=message):
        normalize_proprio(np.zeros(7), stats, 'bounds_q99')


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-100, 100), st.floats(0.01, 50), st.floats(0, 1)),
                min_size=1, max_size=8))
def test_normalize_then_unnormalize_returns_the_input(columns):
    low = np.array([c[0] for c in columns])
    high = low + np.array([c[1] for c in columns])
    x = low + np.array([c[2] for c in columns]) * (high - low)
    stats = _stats(low, high)
    back = unnormalize_actions(normalize_proprio(x, stats, 'bounds'), stats, 'bounds')
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-9 * (1 + np.abs(x).max()))


def test_dict_round_trip_and_equality():
    stats = DatasetStats.from_dict(LIBERO_LIKE)
    assert stats.action.dim == 7 and stats.proprio.dim == 8
    assert stats.proprio.mask is None
    np.testing.assert_array_equal(stats.action.effective_mask, [True] * 6 + [False])
    assert stats.num_transitions == 52970 and stats.num_trajectories == 432
    assert stats.to_dict() == LIBERO_LIKE
    assert DatasetStats.from_dict(stats.to_dict()) == stats
    assert stats.action.q99.dtype == np.float64
    with pytest.raises(ValueError):
        stats.action.q99[0] = 5.0  # read-only: statistics are shared between users


def test_dataset_without_proprio_or_counts():
    stats = DatasetStats.from_dict({'action': LIBERO_LIKE['action']})
    assert stats.proprio is None and stats.num_transitions is None
    assert stats.to_dict() == {'action': LIBERO_LIKE['action']}


@pytest.mark.parametrize('change, message', [
    (lambda a: a.pop('q99'),
     r"expected keys \[.*\], got \['mask', 'max', 'mean', 'min', 'q01', 'std'\] "
     r"\(missing \['q99'\]\)"),
    (lambda a: a.update(q01=[0.0] * 6), 'expected every statistic to have length 7 .*got q01 '
                                        'of length 6'),
    (lambda a: a.update(mask=[True] * 8), 'expected mask of length 7.*got length 8'),
    (lambda a: a.update(mask=[1, 0, 1, 1, 1, 1, 1]), 'expected mask to be a 1-D list of bool'),
    (lambda a: a.update(min=[float('nan')] * 7), 'expected finite values in min'),
    (lambda a: a.update(max='high'), 'expected max to be a list of numbers'),
])
def test_invalid_action_statistics_raise(change, message):
    entry = json.loads(json.dumps(LIBERO_LIKE))
    change(entry['action'])
    with pytest.raises(NormalizationError, match='action: ' + message):
        DatasetStats.from_dict(entry)


def test_load_dataset_statistics_from_file_and_directory(tmp_path):
    path = tmp_path / 'dataset_statistics.json'
    path.write_text(json.dumps({'libero_spatial_no_noops': LIBERO_LIKE,
                                'aloha1_put_X_into_pot_300_demos': {
                                    'action': {k: v[:6] for k, v in LIBERO_LIKE['action'].items()}
                                }}))
    for source in (path, str(tmp_path)):
        loaded = load_dataset_statistics(source)
        assert list(loaded) == ['libero_spatial_no_noops', 'aloha1_put_X_into_pot_300_demos']
        assert loaded['libero_spatial_no_noops'] == DatasetStats.from_dict(LIBERO_LIKE)
        assert loaded['aloha1_put_X_into_pot_300_demos'].action.dim == 6


def test_load_dataset_statistics_errors_name_the_file(tmp_path):
    missing = tmp_path / 'nope.json'
    with pytest.raises(NormalizationError, match=f'{missing}: dataset statistics file not found'):
        load_dataset_statistics(missing)
    broken = tmp_path / 'broken.json'
    broken.write_text('{"a": ')
    with pytest.raises(NormalizationError, match=f'{broken}: cannot read'):
        load_dataset_statistics(broken)
    empty = tmp_path / 'empty.json'
    empty.write_text('{}')
    with pytest.raises(NormalizationError, match=f'{empty}: expected a non-empty JSON object'):
        load_dataset_statistics(empty)
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'libero_goal': {'proprio': LIBERO_LIKE['proprio']}}))
    with pytest.raises(NormalizationError,
                       match=f"{bad}: dataset 'libero_goal': expected an \"action\" entry"):
        load_dataset_statistics(bad)


def test_resolve_unnorm_key():
    one = {'bridge_orig': None}
    two = {'libero_goal': None, 'libero_10_no_noops': None}
    assert resolve_unnorm_key(one, None) == 'bridge_orig'
    assert resolve_unnorm_key(two, 'libero_goal') == 'libero_goal'
    message = r"2 datasets; choose one of \['libero_10_no_noops', 'libero_goal'\]"
    with pytest.raises(NormalizationError, match=message):
        resolve_unnorm_key(two, None)
    with pytest.raises(NormalizationError, match=r"one of \['bridge_orig'\], got 'libero_10'"):
        resolve_unnorm_key(one, 'libero_10')
    with pytest.raises(NormalizationError, match='0 datasets'):
        resolve_unnorm_key({}, None)
