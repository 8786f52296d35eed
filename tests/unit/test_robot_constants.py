from __future__ import annotations

import numpy as np

from drivers.go2.constants import (
    JOINT_NAMES_ISAAC_LAB,
    JOINT_NAMES_LEGGED_GYM,
    JOINT_NAMES_SDK,
    Q_MAX,
    Q_MIN,
    reorder_index,
    soft_limits,
)


def test_reorder_maps_match_go2_doc_tables():
    # docs/go2.md §4: x_dst = x_src[A]
    assert reorder_index(JOINT_NAMES_LEGGED_GYM, JOINT_NAMES_SDK).tolist() == [3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8]
    assert reorder_index(JOINT_NAMES_SDK, JOINT_NAMES_LEGGED_GYM).tolist() == [3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8]
    assert reorder_index(JOINT_NAMES_ISAAC_LAB, JOINT_NAMES_SDK).tolist() == [3, 0, 9, 6, 4, 1, 10, 7, 5, 2, 11, 8]
    assert reorder_index(JOINT_NAMES_SDK, JOINT_NAMES_ISAAC_LAB).tolist() == [1, 5, 9, 0, 4, 8, 3, 7, 11, 2, 6, 10]
    assert reorder_index(JOINT_NAMES_ISAAC_LAB, JOINT_NAMES_LEGGED_GYM).tolist() == [
        0,
        3,
        6,
        9,
        1,
        4,
        7,
        10,
        2,
        5,
        8,
        11,
    ]
    assert reorder_index(JOINT_NAMES_LEGGED_GYM, JOINT_NAMES_ISAAC_LAB).tolist() == [
        0,
        4,
        8,
        1,
        5,
        9,
        2,
        6,
        10,
        3,
        7,
        11,
    ]


def test_round_trip_and_default_pose_orders():
    sdk = np.array([-0.1, 0.8, -1.5, 0.1, 0.8, -1.5, -0.1, 1.0, -1.5, 0.1, 1.0, -1.5])  # docs/go2.md §5, SDK order
    lg = sdk[reorder_index(JOINT_NAMES_LEGGED_GYM, JOINT_NAMES_SDK)]
    isaac = sdk[reorder_index(JOINT_NAMES_ISAAC_LAB, JOINT_NAMES_SDK)]
    np.testing.assert_allclose(lg, [0.1, 0.8, -1.5, -0.1, 0.8, -1.5, 0.1, 1.0, -1.5, -0.1, 1.0, -1.5])
    np.testing.assert_allclose(isaac, [0.1, -0.1, 0.1, -0.1, 0.8, 0.8, 1.0, 1.0, -1.5, -1.5, -1.5, -1.5])
    back = isaac[reorder_index(JOINT_NAMES_SDK, JOINT_NAMES_ISAAC_LAB)]
    np.testing.assert_allclose(back, sdk)


def test_soft_limits_are_inside_hard_limits():
    lo, hi = soft_limits(0.9)
    assert np.all(lo > Q_MIN) and np.all(hi < Q_MAX)
    np.testing.assert_allclose((hi - lo), 0.9 * (Q_MAX - Q_MIN))
    assert Q_MIN[0] == -1.0472 and Q_MAX[7] == 4.5379  # FR hip; RR thigh (rear range)
