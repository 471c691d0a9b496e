"""The command line's people and cleanup options: `clean`, and --max-people/--fill-gaps/
--foot-lock on extract (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest

import people_scenes as S
from scail_backend.cli import main
from scail_protocol.sequence import PoseSequence
from test_server_pipeline import cli_outputs, served  # noqa: F401  (module fixtures)


@pytest.fixture
def walk_file(tmp_path):
    truth, _ = S.walk(30.0)
    path = tmp_path / "walk.npz"
    S.walk_sequence(S.jittered(truth, seed=1), 30.0).save(path)
    return path


def test_clean_fills_gaps_and_locks_feet(walk_file, tmp_path, capsys):
    seq = PoseSequence.load(walk_file)
    holed = np.array(seq.joints3d)
    holed[0, 10:13] = np.nan
    source = tmp_path / "holed.npz"
    seq.replace(joints3d=holed).save(source)
    out = tmp_path / "clean.npz"
    assert main(["clean", str(source), "-o", str(out), "--fill-gaps", "4", "--fit",
                 "--foot-lock"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    cleaned = PoseSequence.load(out)
    assert np.isfinite(cleaned.joints3d[0, 10:13]).all()
    assert cleaned.meta["cleanup"]["fill_gaps"]["max_frames"] == 4
    assert "take_fit" in cleaned.meta
    assert sum(cleaned.meta["cleanup"]["foot_lock"]["planted_frames"].values()) > 0


def test_clean_max_people_keeps_the_most_prominent_and_logs_it(tmp_path, capsys):
    T = 20
    truth = np.stack([S.person(S.line(T, (-800, 0, 3000), (-700, 0, 3000))),
                      S.person(S.line(T, (900, 0, 6000), (800, 0, 6000)), scale=0.8)])
    seq, _ = S.detections(truth, np.ones((2, T), bool))
    source, out = tmp_path / "two.npz", tmp_path / "one.npz"
    seq.save(source)
    assert main(["clean", str(source), "-o", str(out), "--max-people", "1"]) == 0
    err = capsys.readouterr().err  # the CLI logs to stderr
    assert "found 2 people, kept the 1 most prominent" in err
    one = PoseSequence.load(out)
    assert one.num_people == 1
    np.testing.assert_allclose(one.joints3d[0], truth[0], atol=0.01)  # the near, larger one


@pytest.mark.parametrize("args, message", [
    (["--max-people", "0"], "must be a positive integer"),
    (["--fill-gaps", "-1"], "gap length must be a whole number"),
    (["--person-order", "random"], "invalid choice"),
])
def test_bad_people_options_are_refused_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main(["extract", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.npz")] + args)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_clean_refuses_to_overwrite_its_input(walk_file, capsys):
    assert main(["clean", str(walk_file), "-o", str(walk_file), "--foot-lock"]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_extract_with_people_options_on_the_tiny_person_case(cases_dir, tmp_path):
    video = cases_dir / "tiny_person_1080p.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    out = tmp_path / "tiny.npz"
    assert main(["-q", "extract", str(video), "-o", str(out), "--estimator", "mediapipe",
                 "--max-people", "1", "--fill-gaps", "3", "--foot-lock"]) == 0
    seq = PoseSequence.load(out)
    assert seq.num_people == 1 and seq.present()[0].mean() >= 0.8
    assert seq.meta["tracking"]["max_people"] == 1
    assert set(seq.meta["cleanup"]) == {"fill_gaps", "foot_lock"}


@pytest.mark.slow
def test_cleanup_through_the_server_equals_cleaning_the_cli_poses(cli_outputs, served):
    """The server's `cleanup` job field runs the same chain as `scail-pose clean`."""
    from scail_backend.cleanup import clean_sequence
    from scail_protocol import messages as M
    from scail_protocol.conversation import cleanup_field

    from test_server_pipeline import assert_same_poses, extract_body

    field = cleanup_field(fill_gaps=3, take_fit=True, foot_lock=True)
    job_id = served.submit(M.EXTRACT, extract_body(cli_outputs["clip"], cleanup=field))
    got = served.wait(job_id).poses
    expected = clean_sequence(cli_outputs["poses"], fill_gaps=3, take_fit=True, foot_lock=True)
    assert_same_poses(got, expected)
    assert got.meta["cleanup"].keys() == expected.meta["cleanup"].keys() == {"fill_gaps",
                                                                             "foot_lock"}

