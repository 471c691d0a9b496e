"""The One Euro filter's maths, its NaN rules, and ``smooth_sequence`` on PoseSequences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scail_backend import smoothing as S
from scail_protocol.camera import intrinsics_from_fov, project
from scail_protocol.sequence import PoseSequence

FPS = 30.0
SIZE_PX = np.array([400.0])  # the person's size: speed is measured in sizes per second


def _alpha(cutoff_hz: float, fps: float = FPS) -> float:
    return 1.0 / (1.0 + fps / (2.0 * math.pi * cutoff_hz))


def _noisy(rng, frames=600, points=40, sigma=2.0):
    """(1, T, N, 2) white noise of ``sigma`` px around a still point."""
    return rng.normal(0.0, sigma, (1, frames, points, 2)) + 500.0


def _ramp(frames=400, speed_px_s=300.0):
    """(1, T, 1, 2) a point moving at constant speed along a diagonal."""
    t = np.arange(frames) / FPS
    return (100.0 + speed_px_s * t[:, None] * np.array([0.6, 0.8]))[None, :, None, :]


# --- the filter ---------------------------------------------------------------------------------

@pytest.mark.parametrize("zero_lag", [False, True])
def test_constant_signal_comes_out_unchanged(zero_lag):
    x = np.broadcast_to(np.array([12.5, -3.0, 2400.0]), (2, 50, 5, 3))
    out = S.one_euro(x, FPS, S.OneEuroParams(1.0, 0.7), zero_lag=zero_lag)
    np.testing.assert_allclose(out, x, rtol=0, atol=1e-9)


def test_without_beta_noise_variance_falls_as_a_first_order_low_pass(rng):
    noise = _noisy(rng)
    out = S.one_euro(noise, FPS, S.OneEuroParams(1.0, 0.0), size=SIZE_PX)
    a = _alpha(1.0)  # white noise through y += a (x - y): variance × a / (2 - a)
    ratio = noise[:, 30:].var() / out[:, 30:].var()
    assert ratio == pytest.approx((2.0 - a) / a, rel=0.1)  # 10.5x at 1 Hz and 30 fps


def test_medium_strength_reduces_noise_variance(rng):
    """Fixed seed: 2 px white noise on a still 400 px person at 30 fps. Speed from the noise
    itself opens the filter a little, so the reduction is below the rest cutoff's; measured
    2.8x causal and 5.1x forward-backward."""
    noise = _noisy(rng)
    image, _ = S.params_for_strength(S.STRENGTHS["medium"])
    causal = S.one_euro(noise, FPS, image, size=SIZE_PX)
    both = S.one_euro(noise, FPS, image, size=SIZE_PX, zero_lag=True)
    inner = slice(30, -30)
    assert noise[:, inner].var() / causal[:, inner].var() > 2.5
    assert noise[:, inner].var() / both[:, inner].var() > 4.5


def test_lag_on_a_ramp_is_bounded_and_zero_lag_removes_it():
    ramp = _ramp()
    image, _ = S.params_for_strength(S.STRENGTHS["medium"])
    causal = S.one_euro(ramp, FPS, image, size=SIZE_PX)
    lag = np.linalg.norm(ramp - causal, axis=-1)[0, 100:-100, 0]
    # steady state: the speed estimate is the true speed, so the cutoff is fixed and the lag of
    # y += a (x - y) behind a ramp of step d per frame is d (1 - a) / a
    step = 300.0 / FPS
    a = _alpha(image.min_cutoff_hz + image.beta * 300.0 / SIZE_PX[0])
    np.testing.assert_allclose(lag, step * (1.0 - a) / a, rtol=1e-6)
    assert lag.max() < step  # under one frame's motion
    both = S.one_euro(ramp, FPS, image, size=SIZE_PX, zero_lag=True)
    assert np.abs(both - ramp)[0, 100:-100].max() < 1e-6


def test_faster_motion_opens_the_filter():
    image = S.OneEuroParams(1.0, 2.0)

    def lag_s(speed_px_s):  # steady-state lag, in seconds of motion
        ramp = _ramp(speed_px_s=speed_px_s)
        lag = np.linalg.norm(ramp - S.one_euro(ramp, FPS, image, size=SIZE_PX), axis=-1)
        return lag[0, 200:].mean() / speed_px_s

    # 0.1 and 1 person size per second: cutoffs 1.2 and 3 Hz (a fixed filter lags the same time)
    assert lag_s(400.0) < 0.5 * lag_s(40.0)


def test_nan_gaps_stay_missing_and_the_filter_restarts_after_them(rng):
    x = _noisy(rng, frames=60, points=3)
    x[0, 20:25, 1] = np.nan
    x[0, 40, :] = np.nan
    out = S.one_euro(x, FPS, S.OneEuroParams(1.0, 0.5), size=SIZE_PX)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
    np.testing.assert_array_equal(out[0, 25, 1], x[0, 25, 1])  # restart: first sample as is
    np.testing.assert_array_equal(out[0, 41], x[0, 41])
    assert not np.allclose(out[0, 26, 1], x[0, 26, 1])          # ...then filtering again
    np.testing.assert_array_equal(out[0, 0], x[0, 0])


def test_people_are_filtered_independently(rng):
    a, b = _noisy(rng, frames=80, points=4), _noisy(rng, frames=80, points=4) * 3.0
    params = S.OneEuroParams(2.0, 1.0)
    both = S.one_euro(np.concatenate([a, b]), FPS, params, size=np.array([400.0, 1200.0]))
    np.testing.assert_allclose(both[0:1], S.one_euro(a, FPS, params, size=SIZE_PX), atol=1e-12)
    np.testing.assert_allclose(both[1:2], S.one_euro(b, FPS, params, size=np.array([1200.0])),
                               atol=1e-12)
    gone = np.concatenate([a, np.full_like(b, np.nan)])  # a missing person leaves others alone
    np.testing.assert_allclose(S.one_euro(gone, FPS, params, size=np.array([400.0, 1.0]))[0],
                               both[0], atol=1e-12)


def test_person_size_is_the_median_box_diagonal():
    x = np.full((2, 3, 2, 2), np.nan)
    x[0, :, 0] = 0.0
    x[0, :, 1] = [[30.0, 40.0], [60.0, 80.0], [3.0, 4.0]]  # diagonals 50, 100, 5
    np.testing.assert_allclose(S.person_size(x), [50.0, np.nan])


# --- gaps ---------------------------------------------------------------------------------------

def test_fill_gaps_interpolates_short_interior_gaps_only():
    x = np.arange(12, dtype=np.float64).reshape(1, 12, 1, 1).repeat(2, axis=-1) * 10.0
    x[0, [0, 4, 5, 8, 9, 10]] = np.nan  # gaps: start (1 frame), 4-5 (2), 8-10 (3)
    out = S.fill_gaps(x, 2)
    np.testing.assert_allclose(out[0, 4:6, 0, 0], [40.0, 50.0])
    assert np.isnan(out[0, [0, 8, 9, 10]]).all()  # at the start / longer than 2: left missing
    assert np.isnan(S.fill_gaps(x, 0)[0, 4]).all()
    np.testing.assert_allclose(S.fill_gaps(x, 3)[0, 8:11, 0, 1], [80.0, 90.0, 100.0])


# --- strengths ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (None, None), ("off", None), (0, None), (0.0, None), ("0", None),
    ("light", 0.25), ("MEDIUM", 0.5), ("default", S.STRENGTHS[S.DEFAULT_STRENGTH]),
    (0.3, 0.3), ("0.3", 0.3), (1, 1.0)])
def test_parse_strength_accepts_names_and_numbers(value, expected):
    assert S.parse_strength(value) == expected


@pytest.mark.parametrize("value", ["banana", -0.1, 1.5, float("nan"), True, [0.5], "inf"])
def test_parse_strength_refuses_anything_else(value):
    with pytest.raises(ValueError, match="light, medium, strong"):
        S.parse_strength(value)


def test_stronger_means_lower_cutoffs_and_depth_smoothed_harder():
    previous = None
    for value in (0.1, 0.25, 0.5, 0.75, 1.0):
        image, depth = S.params_for_strength(value)
        assert depth.min_cutoff_hz < image.min_cutoff_hz
        if previous is not None:
            assert image.min_cutoff_hz < previous.min_cutoff_hz and image.beta < previous.beta
        previous = image


# --- sequences ----------------------------------------------------------------------------------

def _walking_sequence(rng, frames=60, people=2, noise_px=1.5, noise_mm=40.0):
    """People walking across the view at ~3 m, with pixel noise on the image position and
    larger noise on the depth (as a monocular estimate has)."""
    size = (256, 448)
    K = intrinsics_from_fov(*size)
    t = np.arange(frames) / FPS
    base = rng.normal(0.0, 250.0, (people, 1, 24, 3)) * np.array([1.0, 2.5, 0.4])
    path = np.stack([-600.0 + 700.0 * t, 0.0 * t, 3000.0 + 200.0 * t], -1)  # (T, 3)
    clean = base + path[None, :, None, :] + np.arange(people)[:, None, None, None] * [900, 0, 0]
    uv = project(clean, K) + rng.normal(0.0, noise_px, clean.shape[:-1] + (2,))
    z = clean[..., 2] + rng.normal(0.0, noise_mm, clean.shape[:-1])
    from scail_protocol.camera import backproject

    noisy = backproject(uv, z, K)
    seq = PoseSequence.empty(people, frames, size, FPS, K=K, meta={"estimator": "test"})
    kp = np.full(seq.kp2d.shape, np.nan)
    kp[:, :, :24] = project(noisy, K)
    score = np.where(np.isfinite(kp).all(-1), 0.9, np.nan)
    box = np.concatenate([np.nanmin(kp, 2), np.nanmax(kp, 2)], -1)
    seq = seq.replace(joints3d=noisy.astype(np.float32), kp2d=kp.astype(np.float32),
                      kp2d_score=score.astype(np.float32), bbox=box.astype(np.float32))
    return seq, clean


def test_smooth_sequence_brings_noisy_joints_closer_to_the_truth(rng):
    seq, clean = _walking_sequence(rng)
    out = S.smooth_sequence(seq)
    inner = slice(5, -5)
    raw_err = np.linalg.norm(seq.joints3d - clean, axis=-1)[:, inner].mean()
    new_err = np.linalg.norm(out.joints3d - clean, axis=-1)[:, inner].mean()
    assert new_err < 0.7 * raw_err
    # the drawn picture: the smoothed joints project where the smoothed 2D points are
    np.testing.assert_allclose(project(out.joints3d.astype(np.float64), out.K),
                               out.kp2d[:, :, :24], atol=0.05)
    assert out.joints3d.dtype == np.float32 and out.num_frames == seq.num_frames


def test_smooth_sequence_records_its_parameters_and_off_is_the_identity(rng):
    seq, _ = _walking_sequence(rng, frames=10, people=1)
    out = S.smooth_sequence(seq, strength="strong")
    info = out.meta["smoothing"]
    assert info["filter"] == "one_euro" and info["strength"] == S.STRENGTHS["strong"]
    image, depth = S.params_for_strength(S.STRENGTHS["strong"])
    assert info["image"]["min_cutoff_hz"] == image.min_cutoff_hz
    assert info["depth"]["min_cutoff_hz"] == depth.min_cutoff_hz
    assert info["zero_lag"] is S.ZERO_LAG and info["fill_gaps_frames"] == 0
    assert out.meta["estimator"] == "test"
    for off in (None, "off", 0):
        assert S.smooth_sequence(seq, strength=off) is seq
    # the meta stays JSON: the sequence still round-trips through the file format
    np.testing.assert_array_equal(PoseSequence.from_arrays(out.to_arrays()).joints3d,
                                  out.joints3d)


def test_smooth_sequence_keeps_missing_frames_missing_unless_asked_to_fill(rng):
    seq, _ = _walking_sequence(rng, frames=30, people=2)
    joints, kp = np.array(seq.joints3d), np.array(seq.kp2d)
    joints[0, 10:13] = np.nan   # person 0 lost for 3 frames
    kp[0, 10:13] = np.nan
    joints[1, 20:] = np.nan     # person 1 leaves
    kp[1, 20:] = np.nan
    scores = np.where(np.isfinite(kp).all(-1), seq.kp2d_score, np.nan)
    boxes = np.array(seq.bbox)
    boxes[0, 10:13] = np.nan
    boxes[1, 20:] = np.nan
    seq = seq.replace(joints3d=joints, kp2d=kp, kp2d_score=scores, bbox=boxes)
    out = S.smooth_sequence(seq)
    np.testing.assert_array_equal(out.present(), seq.present())
    np.testing.assert_array_equal(np.isnan(out.joints3d), np.isnan(seq.joints3d))
    np.testing.assert_array_equal(np.isnan(out.kp2d), np.isnan(seq.kp2d))
    filled = S.smooth_sequence(seq, fill_gaps_frames=3)
    assert filled.present()[0].all()                  # the 3-frame gap is bridged...
    assert not filled.present()[1, 20:].any()         # ...the end of the clip is not
    assert filled.meta["smoothing"]["filled_joints"] == 3 * 24
    assert np.isfinite(filled.kp2d_score[0, 11, :24]).all()
    assert not S.smooth_sequence(seq, fill_gaps_frames=2).present()[0, 10:13].any()


def test_smooth_sequence_refuses_bad_options(rng):
    seq, _ = _walking_sequence(rng, frames=5, people=1)
    with pytest.raises(ValueError, match="smoothing strength"):
        S.smooth_sequence(seq, strength="wobbly")
    with pytest.raises(ValueError, match="fill_gaps_frames"):
        S.smooth_sequence(seq, fill_gaps_frames=-1)
    with pytest.raises(ValueError, match="min_cutoff_hz"):
        S.OneEuroParams(0.0, 1.0)
