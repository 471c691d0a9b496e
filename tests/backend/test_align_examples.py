"""Alignment on the real reference images of ``../shared/examples`` (skipped when absent), and
through the command line and the server.

The driving poses are the first few frames of each example (MediaPipe), which is all the solve
uses (the first frame with a person) and keeps the tests quick.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from scail_backend.align import META_KEY, align_to_reference, find_reference_image
from scail_protocol import messages as M
from scail_protocol.camera import intrinsics_from_fov
from scail_protocol.sequence import PoseSequence

from test_server_pipeline import assert_same_video, cut_clip, decoded_frames

FRAMES = 4
RESOLUTION = (256, 448)  # small working size for the command-line and server runs


def first_frames_poses(folder, frames=FRAMES) -> PoseSequence:
    from scail_backend.estimators import registry
    from scail_backend.video.reader import open_video

    source = open_video(folder / "driving.mp4")
    pictures = [frame for _, frame in zip(range(frames), source)]
    with registry.create("mediapipe") as estimator:
        return estimator.estimate(pictures, size=source.size, fps=source.fps,
                                  K=intrinsics_from_fov(*source.size))


@pytest.mark.slow
@pytest.mark.parametrize("name, variant", [("dance_a", "body"), ("dance_b", "body"),
                                           ("dance_full", "feet")])
def test_real_reference_images(examples_dir, name, variant):
    seq = first_frames_poses(examples_dir / name)
    result = align_to_reference(seq, find_reference_image(examples_dir / name))
    rec = result.sequence.meta[META_KEY]
    assert rec["variant"] == variant and rec["reference_person"] == 0
    assert rec["solved"] is not None and np.isfinite(rec["solved"]["residual_px"])
    if name == "dance_b":  # head and shoulders: the solve may be refused; it must say why
        assert rec["fallback"] is None or "px" in rec["fallback"] or "%" in rec["fallback"]
        return
    assert rec["fallback"] is None, rec["fallback"]
    assert 0.7 <= rec["m"] <= 1.4 and 0.8 <= rec["s"] <= 1.15
    assert not np.allclose(result.sequence.K, seq.K)
    assert not np.array_equal(result.sequence.kp2d, seq.kp2d, equal_nan=True)


@pytest.mark.slow
def test_two_characters_in_the_reference_use_the_first(examples_dir, caplog):
    seq = first_frames_poses(examples_dir / "duet")
    with caplog.at_level(logging.WARNING, logger="scail_backend.align"):
        result = align_to_reference(seq, examples_dir / "duet" / "ref.png")
    rec = result.record
    assert rec["reference_person"] == 0 and rec["variant"] == "feet"
    # The mediapipe estimator reports one person per image; with a multi-person estimator the
    # second penguin is seen too, and then the log must say that the first is used.
    if rec["reference_people"] > 1:
        assert f"shows {rec['reference_people']} characters; aligning to the first" in caplog.text


@pytest.fixture(scope="module")
def job_folder(tmp_path_factory, examples_dir):
    """A folder with the first frames of dance_full and its reference image, run with
    ``scail-pose run DIR --use-align``."""
    from scail_backend.cli import main

    folder = tmp_path_factory.mktemp("dance_full")
    cut_clip(examples_dir / "dance_full" / "driving.mp4", folder / "driving.mp4", FRAMES)
    shutil.copy(examples_dir / "dance_full" / "ref.png", folder / "ref.png")
    assert main(["-q", "run", str(folder), "--use-align", "--estimator", "mediapipe",
                 "--resolution", *map(str, RESOLUTION), "--arch", "cpu"]) == 0
    return folder


@pytest.mark.slow
def test_run_use_align_writes_the_aligned_outputs_and_rerendering_reproduces_them(job_folder,
                                                                                 tmp_path):
    from scail_backend.cli import main

    names = {p.name for p in job_folder.iterdir()}
    assert {"poses.npz", "poses_aligned.npz", "rendered_aligned.mp4"} <= names
    assert "rendered.mp4" not in names
    aligned = PoseSequence.load(job_folder / "poses_aligned.npz")
    rec = aligned.meta[META_KEY]
    np.testing.assert_allclose(aligned.K, rec["K"])
    assert rec["reference"] == "ref.png" and rec["variant"] == "feet"
    assert META_KEY not in PoseSequence.load(job_folder / "poses.npz").meta
    again = tmp_path / "again.mp4"
    assert main(["-q", "render", str(job_folder / "poses_aligned.npz"), "-o", str(again),
                 "--arch", "cpu"]) == 0
    assert_same_video(decoded_frames(again), decoded_frames(job_folder / "rendered_aligned.mp4"))


@pytest.mark.slow
def test_align_command_equals_run_use_align(job_folder, tmp_path, capsys):
    from scail_backend.cli import main

    out = tmp_path / "aligned.npz"
    assert main(["-q", "align", str(job_folder / "poses.npz"), "--ref",
                 str(job_folder / "ref.png"), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    got, expected = PoseSequence.load(out), PoseSequence.load(job_folder / "poses_aligned.npz")
    np.testing.assert_array_equal(got.K, expected.K)
    np.testing.assert_array_equal(got.kp2d, expected.kp2d)
    assert got.meta[META_KEY] == expected.meta[META_KEY]
    assert main(["-q", "align", str(out), "--ref", str(job_folder / "ref.png"),
                 "-o", str(tmp_path / "twice.npz")]) == 2
    assert "already aligned" in capsys.readouterr().err


def test_align_command_errors_are_one_line(tmp_path, capsys):
    from scail_backend.cli import main

    seq = PoseSequence.empty(1, 2, (64, 64), fps=16.0)
    poses = seq.save(tmp_path / "poses.npz")
    assert main(["align", str(poses), "--ref", str(tmp_path / "missing.png"),
                 "-o", str(tmp_path / "a.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no person in any frame" in err
    from test_align import driving_sequence

    poses = driving_sequence().save(tmp_path / "poses.npz")
    assert main(["align", str(poses), "--ref", str(tmp_path / "missing.png"),
                 "-o", str(tmp_path / "a.npz")]) == 2
    assert "reference image not found" in capsys.readouterr().err
    (tmp_path / "driving.mp4").write_bytes(b"")
    assert main(["run", str(tmp_path), "--use-align"]) == 2
    assert "alignment needs a reference image" in capsys.readouterr().err


@pytest.mark.slow
def test_align_job_and_extract_with_use_align_through_the_server(job_folder, tmp_path_factory):
    from scail_backend.server import ServerConfig
    from scail_protocol import conversation
    from scail_protocol.client import BackendClient

    from server_helpers import KEY, ServerThread

    expected = PoseSequence.load(job_folder / "poses_aligned.npz")
    running = ServerThread(ServerConfig(key=KEY, bind="tcp://127.0.0.1:*", roots=(job_folder,),
                                        work_dir=tmp_path_factory.mktemp("work")))
    try:
        with BackendClient(running.address, KEY, timeout_s=120) as client:
            assert client.hello()["capabilities"]["align"] is True
            job_id = client.submit(M.ALIGN, {"poses_path": str(job_folder / "poses.npz"),
                                             "reference": {"path": str(job_folder / "ref.png")}})
            result = client.wait(job_id)
            assert result.job["report"]["alignment"]["K"] == expected.meta[META_KEY]["K"]
            np.testing.assert_array_equal(result.poses.K, expected.K)
            options = dict(conversation.extract_options(estimator="mediapipe",
                                                        resolution=RESOLUTION, use_align=True))
            got = client.converse(conversation.extract(job_folder / "driving.mp4", options,
                                                       reference=job_folder / "ref.png",
                                                       upload_video=True))
            np.testing.assert_array_equal(got.poses.K, expected.K)
            assert got.poses.meta[META_KEY]["variant"] == "feet"
            assert got.poses.meta[META_KEY]["reference"] == "ref.png"  # uploaded: its own name
    finally:
        running.close()
