"""Runs of True frames: found, short ones dropped, short breaks bridged."""

from __future__ import annotations

import numpy as np

from scail_protocol.runs import bridge_gaps, drop_short_runs, true_runs


def test_runs_are_found_with_exclusive_stops_at_both_ends_of_the_mask():
    mask = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert true_runs(mask) == [(0, 2), (4, 5), (6, 9)]
    assert true_runs(np.zeros(4, bool)) == [] and true_runs(np.zeros(0, bool)) == []


def test_short_runs_are_dropped_and_short_breaks_bridged():
    mask = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    np.testing.assert_array_equal(drop_short_runs(mask, 3), [0, 0, 0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(bridge_gaps(mask, 1), [1, 1, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(mask, [1, 1, 0, 0, 1, 0, 1, 1, 1])   # the input is kept
