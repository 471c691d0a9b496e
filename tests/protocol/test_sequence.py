"""PoseSequence: validation, views and the versioned .npz file."""

import json
import zipfile

import numpy as np
import pytest

from scail_protocol import PoseSequence, SequenceError
from scail_protocol.sequence import SCHEMA_VERSION
from scail_protocol.errors import OutputError


def make_sequence(num_people=2, num_frames=4, rng=None) -> PoseSequence:
    rng = rng or np.random.default_rng(0)
    seq = PoseSequence.empty(num_people, num_frames, (512, 896), fps=16.0,
                             meta={"estimator": "test"})
    joints = rng.uniform([-500, -800, 2500], [500, 800, 3500], (num_people, num_frames, 24, 3))
    kp = rng.uniform(0, 500, (num_people, num_frames, 134, 2))
    joints[0, 1, 3] = np.nan  # one missing joint
    kp[1, 2, 100] = np.nan
    score = rng.uniform(0, 1, (num_people, num_frames, 134))
    score[1, 2, 100] = np.nan
    return seq.replace(joints3d=joints, kp2d=kp, kp2d_score=score,
                       bbox=np.tile([10.0, 20.0, 300.0, 400.0], (num_people, num_frames, 1)))


def test_empty_sequence_is_all_missing_with_default_K():
    seq = PoseSequence.empty(1, 3, (512, 896), fps=16)
    assert (seq.num_people, seq.num_frames, seq.height, seq.width) == (1, 3, 512, 896)
    assert np.isnan(seq.joints3d).all() and np.isnan(seq.kp2d).all()
    np.testing.assert_allclose(seq.K[0, 0], 860.5999928831)
    assert not seq.present().any()


def test_constructor_coerces_floats_to_float32_and_freezes_arrays():
    seq = make_sequence()
    assert seq.joints3d.dtype == np.float32 and seq.K.dtype == np.float64
    with pytest.raises(ValueError):
        seq.joints3d[0, 0, 0, 0] = 1.0  # read-only
    with pytest.raises(Exception):
        seq.fps = 3  # frozen dataclass


def test_save_load_round_trip(tmp_path):
    seq = make_sequence()
    path = seq.save(tmp_path / "poses.npz")
    back = PoseSequence.load(path)
    for name in ("K", "joints3d", "kp2d", "kp2d_score", "bbox", "track_id"):
        np.testing.assert_array_equal(getattr(back, name), getattr(seq, name))
    assert back.fps == 16.0 and back.size == (512, 896) and back.meta == {"estimator": "test"}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_wire_arrays_round_trip():
    seq = make_sequence()
    back = PoseSequence.from_arrays(seq.to_arrays())
    np.testing.assert_array_equal(back.kp2d, seq.kp2d)
    assert back.meta == seq.meta


@pytest.mark.parametrize("field, value, message", [
    ("joints3d", np.zeros((2, 4, 18, 3)), "joints3d must be (P, T, 24, 3)"),
    ("kp2d", np.zeros((2, 3, 134, 2)), "kp2d must be (2, 4, 134, 2)"),
    ("bbox", np.zeros((2, 4, 4), dtype=np.int32), "bbox must be a float array"),
    ("track_id", np.array([0, 0]), "track_id must be unique"),
    ("track_id", np.array([0.0, 1.0]), "track_id must be (2,) integers"),
    ("fps", 0.0, "fps must be in"),
    ("size", (0, 896), "size must be within"),
    ("size", (100000, 896), "size must be within"),
    ("K", np.eye(2), "K must be a finite (3, 3)"),
    ("meta", {"x": object()}, "meta must be JSON-serialisable"),
])
def test_validation_names_the_offending_field(field, value, message):
    with pytest.raises(SequenceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_sequence().replace(**{field: value})


def test_zero_joints_are_rejected_as_missing_data():
    joints = np.array(make_sequence().joints3d)
    joints[1, 2, 5] = 0.0
    with pytest.raises(SequenceError, match=r"joints3d\[1, 2, 5\] is \(0, 0, 0\)"):
        make_sequence().replace(joints3d=joints)


def test_infinite_and_partly_nan_values_are_rejected():
    joints = np.array(make_sequence().joints3d)
    joints[0, 0, 0, 0] = np.inf
    with pytest.raises(SequenceError, match="infinite"):
        make_sequence().replace(joints3d=joints)
    joints[0, 0, 0] = (np.nan, 1.0, 2.0)
    with pytest.raises(SequenceError, match="partly-NaN"):
        make_sequence().replace(joints3d=joints)


def test_scores_outside_unit_interval_are_rejected():
    score = np.array(make_sequence().kp2d_score)
    score[0, 0, 0] = 1.5
    with pytest.raises(SequenceError, match=r"kp2d_score must lie in \[0, 1\]"):
        make_sequence().replace(kp2d_score=score)


def test_frames_and_people_views():
    seq = make_sequence(num_people=3, num_frames=6)
    part = seq.frames(2, 5)
    assert part.num_frames == 3
    np.testing.assert_array_equal(part.joints3d, seq.joints3d[:, 2:5])
    one = seq.people([2])
    assert one.num_people == 1 and one.track_id.tolist() == [2]
    with pytest.raises(SequenceError):
        seq.frames(4, 9)
    with pytest.raises(SequenceError):
        seq.people([3])


def test_openpose18_view_takes_head_for_nose():
    seq = make_sequence()
    op = seq.openpose18_3d()
    np.testing.assert_array_equal(op[:, :, 0], seq.joints3d[:, :, 15])


# --- the file ----------------------------------------------------------------------------------

def test_load_missing_file_says_so(tmp_path):
    with pytest.raises(SequenceError, match="pose file not found"):
        PoseSequence.load(tmp_path / "nope.npz")


def test_load_truncated_file_is_a_clear_error(tmp_path):
    path = make_sequence().save(tmp_path / "poses.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SequenceError, match="not a readable PoseSequence"):
        PoseSequence.load(path)


def test_load_garbage_is_a_clear_error(tmp_path):
    path = tmp_path / "poses.npz"
    path.write_bytes(b"hello, not a zip file")
    with pytest.raises(SequenceError, match=r"not a readable PoseSequence .*not an \.npz archive"):
        PoseSequence.load(path)


def _rewrite(path, **changes):
    with np.load(path) as npz:
        data = {k: npz[k] for k in npz.files}
    data.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    np.savez(path, **data)


def test_load_rejects_other_schema_versions(tmp_path):
    path = make_sequence().save(tmp_path / "poses.npz")
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"]))
    meta["schema_version"] = SCHEMA_VERSION + 1
    _rewrite(path, meta=np.asarray(json.dumps(meta)))
    with pytest.raises(SequenceError, match="schema_version 2 is not supported"):
        PoseSequence.load(path)


def test_load_rejects_missing_fields_and_wrong_dtypes(tmp_path):
    path = make_sequence().save(tmp_path / "a.npz")
    _rewrite(path, kp2d=None)
    with pytest.raises(SequenceError, match="missing field"):
        PoseSequence.load(path)
    path = make_sequence().save(tmp_path / "b.npz")
    with np.load(path) as npz:
        joints = npz["joints3d"].astype(np.float64)
    _rewrite(path, joints3d=joints)
    with pytest.raises(SequenceError, match="joints3d must be float32"):
        PoseSequence.load(path)


def test_load_rejects_a_foreign_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(SequenceError, match="missing field"):
        PoseSequence.load(path)


def test_load_never_unpickles(tmp_path):
    path = make_sequence().save(tmp_path / "poses.npz")
    _rewrite(path, meta=np.array([{"kind": "scail_pose_sequence"}], dtype=object))
    with pytest.raises(SequenceError):
        PoseSequence.load(path)


def test_failed_save_leaves_nothing(tmp_path):
    seq = make_sequence()
    with pytest.raises(OutputError, match="does not exist"):
        seq.save(tmp_path / "missing_dir" / "poses.npz")
    assert list(tmp_path.iterdir()) == []
    assert zipfile.is_zipfile(seq.save(tmp_path / "ok.npz"))
