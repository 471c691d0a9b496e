"""`scail-pose batch` (issue 17): inputs, the report, the resources asked of Ray, resuming, and
real Ray in local mode (estimation actors, render tasks, workers killed mid-clip).

The Ray tests share one local Ray session (2 CPUs, no dashboard) started once for the module;
clips are a few frames at a small working size. Outputs are compared with `scail-pose run` on
the same clip: a cut of real footage where ``../shared/examples`` is present, and always a
synthetic clip (nobody in it: the whole pipeline runs, poses all missing, video black); with
``--use-align``, a clip of the project's synthetic figure and its reference image.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scail_backend.batch.clipdir import finished, prepare, remove_partial
from scail_backend.batch.inputs import BatchInputError, Clip, discover
from scail_backend.batch.report import Report, latest, read_report
from scail_backend.batch.resources import (batch_estimator, estimation_device,
                                           estimation_resources, fit_workers, local_cpus,
                                           render_arch, render_resources)
from scail_backend.cli import main
from scail_protocol.errors import ScailError
from scail_protocol.sequence import PoseSequence

from video_helpers import cut_clip, decoded_frames, write_clip

RESOLUTION = ["256", "448"]
POSE_FIELDS = ("K", "joints3d", "kp2d", "kp2d_score", "bbox", "track_id")
EXAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "examples" / "dance_a"


def _scail_folder(folder: Path, frames: int = 4, size=(96, 160), fps: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_clip(folder / "driving.mp4", frames=frames, size=size, fps=fps)
    return folder


def _real_folder(folder: Path, frames: int = 6) -> Path:
    """The first frames of ../shared/examples/dance_a (with its ref.jpg) as a SCAIL folder."""
    folder.mkdir(parents=True, exist_ok=True)
    cut_clip(EXAMPLE / "driving.mp4", folder / "driving.mp4", frames)
    shutil.copyfile(EXAMPLE / "ref.jpg", folder / "ref.jpg")
    return folder


def _figure_folder(folder: Path, frames: int = 4) -> Path:
    """A SCAIL folder of the project's synthetic figure waving (``scail-pose synth`` in a
    subprocess: Blender's state never meets the other tests), with its reference image."""
    command = [sys.executable, "-m", "scail_backend.cli", "-q", "synth", "--motion", "wave",
               "--frames", str(frames), "--resolution", *RESOLUTION, "-o", str(folder)]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    assert (folder / "ref.png").is_file()
    return folder


def _assert_same_outputs(got: Path, expected: Path, poses: str = "poses.npz",
                         video: str = "rendered.mp4") -> None:
    a, b = PoseSequence.load(got / poses), PoseSequence.load(expected / poses)
    for name in POSE_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.fps, a.size, a.num_frames) == (b.fps, b.size, b.num_frames)
    assert a.meta["source"]["sha256"] == b.meta["source"]["sha256"]
    assert a.meta.get("alignment") == b.meta.get("alignment")
    assert a.meta["estimator_reason"] == b.meta["estimator_reason"]  # why, as run says it
    got_video, reference = decoded_frames(got / video), decoded_frames(expected / video)
    assert got_video.shape == reference.shape
    # The rendered RGBA is the same; libx264 may differ by a few levels between processes
    # (see test_server_pipeline.assert_same_video): ask for a near-identical picture.
    error = got_video.astype(np.float64) - reference
    psnr = 10 * np.log10(255.0 ** 2 / max(np.mean(error ** 2), 1e-12))
    assert psnr > 40.0, f"PSNR {psnr:.1f} dB"


# --- inputs (no Ray) -------------------------------------------------------------------------------


def test_folder_tree_finds_scail_folders_with_mirrored_names(tmp_path):
    for name in ("set1/a", "set1/b", "c"):
        _scail_folder(tmp_path / "in" / name, frames=1)
    (tmp_path / "in" / "set1" / "a" / "ref.png").write_bytes(b"png")
    (tmp_path / "in" / "empty").mkdir()
    clips = discover(tmp_path / "in")
    assert [c.name for c in clips] == ["c", "set1/a", "set1/b"]
    assert clips[1].reference == tmp_path / "in" / "set1" / "a" / "ref.png"
    assert clips[0].reference is None


def test_folder_tree_skips_the_output_folder_inside_it(tmp_path):
    _scail_folder(tmp_path / "in" / "a", frames=1)
    _scail_folder(tmp_path / "in" / "out" / "a", frames=1)  # a previous batch's output
    assert [c.name for c in discover(tmp_path / "in", exclude=[tmp_path / "in" / "out"])] == ["a"]


def test_a_single_scail_folder_is_one_clip(tmp_path):
    _scail_folder(tmp_path / "solo", frames=1)
    assert [c.name for c in discover(tmp_path / "solo")] == ["solo"]


def test_glob_of_video_files_and_folders(tmp_path):
    for name in ("x.mp4", "sub/y.mp4"):
        (tmp_path / "clips" / name).parent.mkdir(parents=True, exist_ok=True)
        write_clip(tmp_path / "clips" / name, frames=1)
    clips = discover(f"{tmp_path}/clips/**/*.mp4")
    assert [(c.name, c.video.name) for c in clips] == [("sub/y", "y.mp4"), ("x", "x.mp4")]


def test_csv_manifest_with_per_clip_options(tmp_path):
    _scail_folder(tmp_path / "f", frames=1)
    write_clip(tmp_path / "v.mp4", frames=1)
    (tmp_path / "m.csv").write_text("video,name,fps,resolution,smooth\n"
                                    "f,,,,\n"
                                    "# a comment\n"
                                    "v.mp4,runs/v,16,256x448,light\n")
    clips = discover(tmp_path / "m.csv")
    assert [c.name for c in clips] == ["f", "runs/v"]
    assert clips[0].options == {}
    assert clips[1].options == {"fps": 16.0, "resolution": [256, 448], "smooth": "light"}


def test_jsonl_manifest_and_its_errors(tmp_path):
    write_clip(tmp_path / "v.mp4", frames=1)
    (tmp_path / "m.jsonl").write_text('{"video": "v.mp4", "estimator": "mediapipe"}\n\n')
    assert discover(tmp_path / "m.jsonl") == [Clip("v", tmp_path / "v.mp4", None,
                                                   {"estimator": "mediapipe"})]
    (tmp_path / "bad.jsonl").write_text('{"video": "v.mp4", "colour": "red"}\n')
    with pytest.raises(BatchInputError, match="line 1: unknown column"):
        discover(tmp_path / "bad.jsonl")
    (tmp_path / "dup.jsonl").write_text('{"video": "v.mp4"}\n{"video": "v.mp4"}\n')
    with pytest.raises(BatchInputError, match="two clips would write into OUT_DIR/v"):
        discover(tmp_path / "dup.jsonl")
    (tmp_path / "fps.jsonl").write_text('{"video": "v.mp4", "fps": 0}\n')
    with pytest.raises(BatchInputError, match="line 1: bad fps 0"):
        discover(tmp_path / "fps.jsonl")  # refused before any clip runs, as `run --fps 0`
    (tmp_path / "up.jsonl").write_text('{"video": "v.mp4", "name": "../../etc"}\n')
    with pytest.raises(BatchInputError, match="relative path inside"):
        discover(tmp_path / "up.jsonl")


def test_a_manifest_that_gives_one_name_twice_says_so(tmp_path):
    """Two rows named alike are the manifest's doing: the error names its rows and files,
    rather than asking for the names the rows already have."""
    for name in ("a.mp4", "b.mp4"):
        write_clip(tmp_path / name, frames=1)
    (tmp_path / "m.csv").write_text("video,name\na.mp4,l1\n# a comment\nb.mp4,l1\n")
    with pytest.raises(BatchInputError) as error:
        discover(tmp_path / "m.csv")
    said = str(error.value)
    assert f"{tmp_path / 'm.csv'} gives the name 'l1' twice" in said
    assert "line 2" in said and "line 4" in said
    assert "a.mp4" in said and "b.mp4" in said
    assert "give them names" not in said
    # a row named like another row's video: the name was given once, the other one is derived
    (tmp_path / "mixed.jsonl").write_text('{"video": "a.mp4"}\n{"video": "b.mp4", "name": "a"}\n')
    with pytest.raises(BatchInputError, match="two clips would write into OUT_DIR/a: .*line 1.*"
                                              "line 2"):
        discover(tmp_path / "mixed.jsonl")


def test_nothing_found_is_an_error(tmp_path):
    with pytest.raises(BatchInputError, match="no clip found"):
        discover(tmp_path)
    with pytest.raises(BatchInputError, match="not found"):
        discover(tmp_path / "missing")


# --- report and clip folders (no Ray) ---------------------------------------------------------------


def test_report_survives_a_torn_line(tmp_path):
    with Report(tmp_path) as report:
        report.add("a", "done", frames=3)
    with open(tmp_path / "batch_report.jsonl", "a") as f:
        f.write('{"clip": "b", "sta')  # a kill in the middle of a line
    with Report(tmp_path) as report:
        report.add("b", "failed", error="bad\nthing")
    records = read_report(tmp_path)
    assert [(r["clip"], r["status"]) for r in records] == [("a", "done"), ("b", "failed")]
    assert latest(tmp_path)["b"]["error"] == "bad thing"


def test_prepare_links_and_finished_checks_outputs(tmp_path):
    source = _scail_folder(tmp_path / "in" / "a", frames=2)
    (source / "ref.jpg").write_bytes(b"jpg")
    folder = tmp_path / "out" / "a"
    (folder).mkdir(parents=True)
    (folder / ".poses.npz.0badc0de.part").write_bytes(b"half")  # left by a killed worker
    prepare(discover(tmp_path / "in")[0], folder)
    assert (folder / "driving.mp4").resolve() == (source / "driving.mp4").resolve()
    assert (folder / "ref.jpg").is_file()
    assert not (folder / ".poses.npz.0badc0de.part").exists()
    assert finished(folder) is None
    (folder / "poses.npz").write_bytes(b"not an npz")
    (folder / "rendered.mp4").write_bytes(b"not a video")
    assert finished(folder) is None
    assert remove_partial(folder) == 0


def test_fingerprint_counts_only_what_changes_the_outputs(tmp_path):
    from scail_backend.batch.fingerprint import fingerprint, why_redo
    from scail_backend.cleanup import CleanupOptions

    video, ref = tmp_path / "driving.mp4", tmp_path / "ref.png"
    write_clip(video, frames=1)
    ref.write_bytes(b"png")
    base = {"estimator": "mediapipe", "resolution": None, "arch": "auto", "smoothing": "medium",
            "fps": None, "use_align": False, "align_options": {"fallback": "clamped",
                                                               "adapt": False},
            "device": "auto", "cleanup": None}
    made = fingerprint(video, ref, base)
    same = dict(base, resolution=[512, 896], arch="cpu", device="cpu", smoothing=0.5,
                weights_dir="elsewhere", cleanup=CleanupOptions(),
                align_options={"fallback": "default", "adapt": True})  # unused without align
    assert why_redo(made, fingerprint(video, ref, same), video, tmp_path) is None
    other = dict(base, resolution=[256, 448], cleanup=CleanupOptions(fill_gaps=4, foot_lock=True))
    assert why_redo(made, fingerprint(video, ref, other), video, tmp_path) == \
        "made with other settings (--resolution, --fill-gaps, --foot-lock)"
    aligned = dict(base, use_align=True)
    assert why_redo(made, fingerprint(video, ref, aligned), video, tmp_path) == \
        "made with other settings (--use-align)"
    made = fingerprint(video, ref, aligned)
    ref.write_bytes(b"another png")   # only alignment reads the reference image
    assert why_redo(made, fingerprint(video, ref, aligned), video, tmp_path) == \
        "its reference image changed since the last batch"
    assert why_redo(made, fingerprint(video, None, aligned), video, tmp_path) == \
        "its reference image changed since the last batch"
    assert "nothing records which video" in why_redo(None, made, video, tmp_path)


# --- what each part asks Ray for (no Ray) ----------------------------------------------------------


@pytest.mark.parametrize("estimator, cluster_gpus, workers, gpus", [
    ("nlf", 0, 1, 0),          # no GPU in the cluster: a CPU actor
    ("nlf", 1, 1, 1),          # one GPU per worker
    ("nlf", 4, 2, 1),
    ("nlf", 1, 2, 0.5),        # fewer GPUs than workers: shared
    ("mediapipe", 2, 1, 0),    # a CPU estimator never asks for a GPU
    ("mediapipe", 0, 2, 0),
])
def test_estimation_asks_for_a_gpu_only_for_a_gpu_estimator_on_a_gpu_cluster(
        estimator, cluster_gpus, workers, gpus):
    assert estimation_resources(estimator, cluster_gpus, workers=workers) == {
        "num_cpus": 1, "num_gpus": gpus}


def test_a_manifest_row_that_switches_a_clip_to_nlf_sizes_the_actors_for_it():
    """A batch defaulting to mediapipe whose manifest sends one clip to nlf: the actors must
    ask for the GPU that clip will use."""
    assert batch_estimator({"estimator": "mediapipe"}, [None, "nlf", "mediapipe"]) == "nlf"
    assert batch_estimator({"estimator": "mediapipe"}, [None, "mediapipe"]) == "mediapipe"
    assert batch_estimator({"estimator": "nlf"}, ["mediapipe"]) == "nlf"
    assert batch_estimator({"estimator": "mediapipe"}) == "mediapipe"


def test_explicit_gpu_requests_and_the_cpu_device():
    assert estimation_resources("mediapipe", 2, gpus_per_worker=0.5)["num_gpus"] == 0.5
    assert estimation_resources("nlf", 2, gpus_per_worker=0)["num_gpus"] == 0
    assert estimation_resources("nlf", 2, device="cpu")["num_gpus"] == 0
    with pytest.raises(ScailError, match="more GPUs than the cluster has"):
        estimation_resources("nlf", 0, gpus_per_worker=1)
    with pytest.raises(ScailError, match="0 or more"):
        estimation_resources("nlf", 1, gpus_per_worker=-1)
    # an actor given no GPU runs its estimator on the CPU (Ray still shows it the node's GPUs)
    assert estimation_device(None, {"num_cpus": 1, "num_gpus": 0}) == "cpu"
    assert estimation_device(None, {"num_cpus": 1, "num_gpus": 1}) is None
    assert estimation_device("cuda", {"num_cpus": 1, "num_gpus": 1}) == "cuda"


def test_render_tasks_are_cpu_tasks_with_room_left_for_them():
    assert render_resources() == {"num_cpus": 1, "num_gpus": 0}
    assert render_arch("auto") == "cpu" and render_arch("cuda") == "cuda"
    assert local_cpus(1) == 2 and local_cpus(3) == 6  # an actor and a render task per worker
    assert fit_workers(2, 4) == 2
    assert fit_workers(8, 4) == 3  # actors hold their CPU: one is kept for the renders
    with pytest.raises(ScailError, match="at least 2 CPUs"):
        fit_workers(1, 1)


# --- real Ray, local mode --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module: 2 CPUs, no dashboard."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 1024 * 1024,
             runtime_env={"env_vars": {"TI_SKIP_VERSION_CHECK": "ON"}})
    yield ray
    ray.shutdown()


def _batch(inputs, out, *extra) -> int:
    return main(["-q", "batch", str(inputs), "-o", str(out), "--estimator", "mediapipe",
                 "--resolution", *RESOLUTION, "--workers", "2", *extra])


@pytest.fixture(scope="module")
def first_batch(ray_session, tmp_path_factory):
    """A batch over two synthetic clips, a corrupt one and (where present) real footage."""
    root = tmp_path_factory.mktemp("batch")
    inputs = root / "in"
    _scail_folder(inputs / "synth" / "a")
    _scail_folder(inputs / "synth" / "b", frames=3, fps=25)
    broken = inputs / "broken"
    broken.mkdir(parents=True)
    (broken / "driving.mp4").write_bytes(b"\x00not a video" * 100)
    if EXAMPLE.is_dir():
        _real_folder(inputs / "real")
    out = root / "out"
    code = _batch(inputs, out)
    return inputs, out, code


def test_batch_runs_every_clip_and_records_the_corrupt_one(first_batch):
    inputs, out, code = first_batch
    assert code == 1  # one clip failed
    states = latest(out)
    assert states["broken"]["status"] == "failed"
    assert "not a readable video" in states["broken"]["error"]
    assert "\n" not in states["broken"]["error"]
    done = [name for name, r in states.items() if r["status"] == "done"]
    assert sorted(done) == sorted(n for n in ("synth/a", "synth/b", "real")
                                  if (inputs / n).is_dir())
    assert finished(out / "synth" / "a") == 4 and finished(out / "synth" / "b") == 3
    # what `run` warns of is in the report (a 25 fps clip plays slower at 16 fps) ...
    assert any("driving.mp4 is 25 fps" in w for w in states["synth/b"]["warnings"])
    # ... and a missing reference image, which only alignment needs, is no warning
    assert not any("reference image" in w for r in states.values() for w in r.get("warnings", ()))
    assert not (out / "broken" / "poses.npz").exists()
    assert not [p for p in out.rglob(".*.part")]


def test_batch_outputs_equal_run(first_batch, tmp_path):
    inputs, out, _ = first_batch
    for name in ("synth/a", "real"):
        if not (inputs / name).is_dir():
            continue
        alone = tmp_path / name.replace("/", "_")
        shutil.copytree(inputs / name, alone)
        assert main(["-q", "run", str(alone), "--estimator", "mediapipe",
                     "--resolution", *RESOLUTION]) in (0, 3)  # 3: nobody in the synthetic clip
        _assert_same_outputs(out / name, alone)


def test_batch_resumes_skipping_finished_clips(first_batch, capsys):
    inputs, out, _ = first_batch
    before = (out / "synth" / "a" / "poses.npz").stat().st_mtime_ns
    for name in ("poses.npz", "rendered.mp4"):  # as if the batch stopped before this clip
        (out / "synth" / "b" / name).unlink()
    (out / "synth" / "b" / ".rendered.mp4.12345678.part").write_bytes(b"half")
    capsys.readouterr()
    assert _batch(inputs, out) == 1  # the corrupt clip fails again
    err = capsys.readouterr().err
    skipped = 2 if (inputs / "real").is_dir() else 1
    assert f"1 done, {skipped} skipped, 1 failed" in err
    assert (out / "synth" / "a" / "poses.npz").stat().st_mtime_ns == before
    assert finished(out / "synth" / "b") == 3
    assert not (out / "synth" / "b" / ".rendered.mp4.12345678.part").exists()


def _poses_mtime(folder: Path) -> int:
    return (folder / "poses.npz").stat().st_mtime_ns


def test_finished_clip_is_redone_when_its_settings_change_and_skipped_when_not(
        ray_session, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _scail_folder(inputs / "a")
    assert _batch(inputs, out) == 0
    first = _poses_mtime(out / "a")
    video = inputs / "a" / "driving.mp4"
    stat = video.stat()   # the video touched, its content the same (a copy, a download)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    capsys.readouterr()
    assert _batch(inputs, out) == 0
    assert "0 done, 1 skipped, 0 failed" in capsys.readouterr().err
    assert _poses_mtime(out / "a") == first

    assert _batch(inputs, out, "--fps", "8", "--smooth") == 0   # the bug: was "1 skipped"
    err = capsys.readouterr().err
    assert "1 done (1 redone), 0 skipped, 0 failed" in err
    assert "a: redone: made with other settings (--fps, --smooth)\n" in err  # even under -q
    state = latest(out)["a"]
    assert state["status"] == "done"
    assert state["redone"] == "made with other settings (--fps, --smooth)"
    assert finished(out / "a") == state["frames"] == 2   # 4 frames at 16 fps, taken at 8 fps
    sequence = PoseSequence.load(out / "a" / "poses.npz")
    assert sequence.meta["source"]["resampled_fps"] == 8.0 and sequence.meta["smoothing"]

    capsys.readouterr()
    assert _batch(inputs, out, "--fps", "8", "--smooth", "medium", "--arch", "cpu") == 0
    assert "0 done, 1 skipped, 0 failed" in capsys.readouterr().err  # the same settings
    assert _batch(inputs, out) == 0   # back to the first settings: redone again
    assert latest(out)["a"]["redone"] == "made with other settings (--fps, --smooth)"
    assert finished(out / "a") == 4


def test_a_redone_clip_drops_the_other_layout_s_outputs_made_with_other_settings(
        ray_session, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _scail_folder(inputs / "a")
    assert _batch(inputs, out) == 0
    aligned = (out / "a" / "poses_aligned.npz", out / "a" / "rendered_aligned.mp4")
    shutil.copy(out / "a" / "poses.npz", aligned[0])   # as an aligned run would leave them
    shutil.copy(out / "a" / "rendered.mp4", aligned[1])
    assert _batch(inputs, out) == 0                    # same settings: skipped, both kept
    assert all(path.exists() for path in aligned)
    capsys.readouterr()
    assert _batch(inputs, out, "--fps", "8") == 0      # other settings: they no longer go
    assert "1 done (1 redone)" in capsys.readouterr().err
    assert not any(path.exists() for path in aligned)
    assert finished(out / "a") == 2


def test_switching_to_alignment_is_a_redo_that_keeps_the_plain_video(tmp_path):
    from scail_backend.batch.fingerprint import fingerprint
    from scail_backend.batch.runner import _plan

    inputs, out = tmp_path / "in", tmp_path / "out"
    clip = Clip("a", _scail_folder(inputs / "a") / "driving.mp4")
    (out / "a").mkdir(parents=True)
    write_clip(out / "a" / "rendered.mp4", frames=4)
    PoseSequence.empty(0, 4, (96, 160), 16.0).save(out / "a" / "poses.npz")
    plain = {"estimator": "mediapipe", "resolution": None, "fps": None, "use_align": False}
    recorded = {"a": fingerprint(clip.video, None, plain)}
    plan = _plan(clip, out, dict(plain, use_align=True), recorded, {}, force=False)
    assert plan.redone == "made with other settings (--use-align)" and plan.stale == ()
    plan = _plan(clip, out, dict(plain, use_align=True, fps=8.0), recorded, {}, force=False)
    assert plan.stale == ("rendered.mp4",)             # its poses are no longer these
    assert _plan(clip, out, plain, recorded, {}, force=False).skipped == 4


def test_finished_clip_is_redone_when_its_video_is_replaced(ray_session, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _scail_folder(inputs / "a")
    _scail_folder(inputs / "b", frames=3)
    assert _batch(inputs, out) == 0
    kept = _poses_mtime(out / "b")
    time.sleep(0.01)
    write_clip(inputs / "a" / "driving.mp4", frames=6)   # another video under the same name
    capsys.readouterr()
    assert _batch(inputs, out) == 0
    assert "1 done (1 redone), 1 skipped, 0 failed" in capsys.readouterr().err
    states = latest(out)
    assert states["a"]["redone"] == "its video changed since the last batch"
    assert states["a"]["frames"] == 6 and finished(out / "a") == 6
    assert states["b"]["status"] == "skipped" and _poses_mtime(out / "b") == kept

    # outputs with no record of what made them (an older batch, `run` in the folder, a
    # report deleted): they cannot be trusted, so they are made again, saying why
    (out / "batch_report.jsonl").unlink()
    assert _batch(inputs, out) == 0
    assert "2 done (2 redone), 0 skipped, 0 failed" in capsys.readouterr().err
    assert all("nothing records which video and settings" in latest(out)[name]["redone"]
               for name in ("a", "b"))


def test_batch_use_align_equals_run_use_align(ray_session, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    figure = _figure_folder(inputs / "figure")
    assert _batch(inputs, out, "--use-align") == 0
    got = out / "figure"
    assert {"poses.npz", "poses_aligned.npz", "rendered_aligned.mp4"} <= {
        p.name for p in got.iterdir()}
    assert not (got / "rendered.mp4").exists()
    assert finished(got, use_align=True) == 4
    alone = tmp_path / "alone"
    shutil.copytree(figure, alone)
    assert main(["-q", "run", str(alone), "--use-align", "--estimator", "mediapipe",
                 "--resolution", *RESOLUTION]) == 0
    _assert_same_outputs(got, alone, "poses_aligned.npz", "rendered_aligned.mp4")
    assert PoseSequence.load(got / "poses_aligned.npz").meta["alignment"]["fallback"] is None
    np.testing.assert_array_equal(PoseSequence.load(got / "poses.npz").joints3d,
                                  PoseSequence.load(alone / "poses.npz").joints3d)


def test_progress_counts_frames_live_and_every_clip(ray_session, tmp_path):
    from scail_backend.batch.progress import ClipEvents
    from scail_backend.batch.runner import BatchOptions, run_batch

    class Events(ClipEvents):
        live_frames = True  # through the actors' Ray queue, as the progress bars ask

        def __init__(self):
            self.total, self.frames, self.ended = None, 0, []

        def start(self, total):
            self.total = total

        def frames_estimated(self, count):
            self.frames += count

        def clip_ended(self, clip, record):
            self.ended.append((clip.name, record["status"]))

    for name, frames in (("a", 12), ("b", 3)):
        _scail_folder(tmp_path / "in" / name, frames=frames)
    events = Events()
    summary = run_batch(tmp_path / "in", tmp_path / "out", BatchOptions(defaults={
        "estimator": "mediapipe", "resolution": (256, 448)}), events)
    assert (summary.done, summary.frames) == (2, 15)
    assert events.total == 2 and sorted(events.ended) == [("a", "done"), ("b", "done")]
    assert events.frames == 15  # each frame counted once, live or at its clip's end


@pytest.fixture
def flow(ray_session, tmp_path):
    """A ClipFlow with one estimation actor (mediapipe, full working size: slow enough to be
    killed mid-clip), and the outcomes of the clips that ended."""
    from scail_backend.batch.flow import ClipFlow, WorkerPool
    from scail_backend.batch.progress import ClipEvents, FrameProgress

    frames = FrameProgress(ClipEvents())
    pool = WorkerPool(ray_session, {"num_cpus": 1, "num_gpus": 0}, 1, {"estimator": "mediapipe"},
                      frames.queue)
    ended = []
    try:
        yield ClipFlow(ray_session, pool, tmp_path / "out", frames,
                       lambda clip, outcome: ended.append(outcome)), ended
    finally:
        pool.close()
        frames.close()


def _until(condition, what: str, flow=None, seconds: float = 120):
    """Wait for ``condition()`` (stepping ``flow``); returns its value."""
    deadline = time.monotonic() + seconds
    while True:
        if flow is not None:
            flow.step()
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _descendant_titled(title: str):
    """The pid of a process below this one whose title (as Ray sets it) starts with ``title``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(title.encode()):
                continue
            pid = int(entry.name)
            while pid > 1:  # up the parents: ours, not another Ray's on this machine
                stat = Path(f"/proc/{pid}/stat").read_text()
                pid = int(stat.rsplit(")", 1)[1].split()[1])
                if pid == os.getpid():
                    return int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def test_killed_estimation_worker_fails_its_clip_and_is_replaced(flow, tmp_path):
    flow, ended = flow
    clip = discover(_scail_folder(tmp_path / "in" / "k", frames=40, size=(240, 320)))[0]
    flow.submit([clip])
    (_, worker, _), = flow.estimating.values()
    _until(lambda: (tmp_path / "out" / "k" / "driving.mp4").exists(), "the clip to start")
    time.sleep(0.5)
    flow.ray.kill(worker, no_restart=True)  # the worker process dies mid-clip
    _until(lambda: ended, "the clip to end", flow)
    assert ended[0]["status"] == "failed"
    assert "worker process died while estimating" in ended[0]["error"]
    assert len(flow.pool.idle) == 1 and flow.pool.idle[0] is not worker and not flow.pool.busy
    assert flow.ray.get(flow.pool.idle[0].ready.remote())  # the replacement works
    assert not flow.busy and not list((tmp_path / "out" / "k").glob(".*"))


def test_killed_render_task_fails_its_clip_and_leaves_no_half_written_file(flow, tmp_path):
    flow, ended = flow
    clip = discover(_scail_folder(tmp_path / "in" / "r", frames=40, size=(240, 320)))[0]
    folder = tmp_path / "out" / "r"
    flow.submit([clip])
    _until(lambda: flow.rendering, "the estimation to end", flow)
    pid = _until(lambda: _descendant_titled("ray::render_clip"), "the render task")
    _until(lambda: list(folder.glob(".*.part")), "the render to write")  # half-written now
    os.kill(pid, signal.SIGKILL)
    _until(lambda: ended, "the clip to end", flow)
    assert ended[0]["status"] == "failed"
    assert "worker process died while rendering" in ended[0]["error"], ended[0]["error"]
    assert not list(folder.glob(".*"))  # the temporaries are gone
    assert not (folder / "poses.npz").exists() and not (folder / "rendered.mp4").exists()


@pytest.mark.slow
def test_interrupted_batch_loses_no_finished_clip_and_resumes(ray_session, tmp_path):
    """SIGTERM to a batch running in its own process (its own local Ray) once a clip is done:
    exit 143, finished clips intact, no temporary left; running it again (on the module's Ray)
    finishes the rest."""
    inputs = tmp_path / "in"
    for index in range(4):
        _scail_folder(inputs / f"c{index}", frames=16, size=(240, 320))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "scail_backend.cli", "-q", "batch", str(inputs), "-o",
               str(out), "--estimator", "mediapipe", "--resolution", *RESOLUTION]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if any(r["status"] == "done" for r in read_report(out)):
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err.decode()[-2000:]
    done = [r["clip"] for r in read_report(out) if r["status"] == "done"]
    assert done and len(done) < 4
    assert not list(out.rglob(".*.part"))
    for name in done:
        assert finished(out / name) == 16
    assert _batch(inputs, out) == 0
    states = latest(out)
    assert all(states[f"c{i}"]["status"] in ("done", "skipped") for i in range(4))
    assert all(finished(out / f"c{i}") == 16 for i in range(4))
    with open(out / "batch_report.jsonl") as f:
        assert all(json.loads(line) for line in f)  # every line whole


def test_the_driver_says_each_clips_warnings_and_failure(tmp_path, caplog):
    from scail_backend.batch.progress import ClipEvents
    from scail_backend.batch.report import Summary
    from scail_backend.batch.runner import _record

    summary = Summary()
    with Report(tmp_path) as report:
        _record(Clip("x/slow", tmp_path / "a.mp4"), {"status": "done", "frames": 3,
                                                     "warnings": ["a.mp4 is 60 fps; ..."]},
                report, summary, ClipEvents())
        link = tmp_path / "x" / "bad" / "driving.mp4"   # what the worker opened
        _record(Clip("x/bad", tmp_path / "in" / "b.mp4"),
                {"status": "failed", "error": f"{link} is not a readable video"},
                report, summary, ClipEvents())
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # the user's own file is named, not the link to it in the clip's output folder
    assert "x/slow: a.mp4 is 60 fps; ..." in said
    assert f"x/bad failed: {tmp_path / 'in' / 'b.mp4'} is not a readable video" in said
    assert latest(tmp_path)["x/bad"]["error"] == f"{tmp_path / 'in' / 'b.mp4'} is not a readable video"
    assert (summary.done, summary.failed) == (1, 1)


def test_videos_outside_scail_folders_are_named_not_silently_left_out(tmp_path, caplog):
    _scail_folder(tmp_path / "in" / "a", frames=1)
    (tmp_path / "in" / "a" / "rendered.mp4").write_bytes(b"x")   # a SCAIL folder's own output
    (tmp_path / "in" / "loose").mkdir()
    (tmp_path / "in" / "loose" / "take2.MOV").write_bytes(b"x")
    clips = discover(tmp_path / "in")
    assert [c.name for c in clips] == ["a"]
    (said,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said.startswith("1 video file(s) under ") and "take2.MOV" in said
    assert "glob" in said and "manifest" in said


class _ClientThatFailsToStart:
    """Stands in for ``ray`` only in what the retry rule reads: ``init`` raising what Ray Client
    raises when its server cannot start its per-client process, ``failures`` times."""

    def __init__(self, failures: int, message: str = "Initialization failure from server:\nx"):
        self.failures, self.message, self.calls = failures, message, 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionAbortedError(self.message)


def test_ray_client_start_up_failure_is_tried_again(monkeypatch):
    from scail_backend.batch import raysession
    monkeypatch.setattr(raysession, "CLIENT_INIT_PAUSE_S", 0.0)
    client = _ClientThatFailsToStart(failures=raysession.CLIENT_INIT_ATTEMPTS - 1)
    assert raysession.start_ray(client, "ray://127.0.0.1:1", workers=1) is True
    assert client.calls == raysession.CLIENT_INIT_ATTEMPTS


def test_ray_client_that_never_starts_or_refuses_is_one_error(monkeypatch):
    from scail_backend.batch import raysession
    monkeypatch.setattr(raysession, "CLIENT_INIT_PAUSE_S", 0.0)
    never = _ClientThatFailsToStart(failures=99)
    with pytest.raises(ScailError, match="cannot start or reach the Ray cluster at ray://"):
        raysession.start_ray(never, "ray://127.0.0.1:1", workers=1)
    assert never.calls == raysession.CLIENT_INIT_ATTEMPTS
    refused = _ClientThatFailsToStart(failures=99, message="connection refused")
    with pytest.raises(ScailError):
        raysession.start_ray(refused, "ray://127.0.0.1:1", workers=1)
    assert refused.calls == 1  # not a start-up failure: not tried again


def test_an_earlier_batch_output_inside_the_inputs_is_not_searched_again(tmp_path, caplog):
    _scail_folder(tmp_path / "in" / "a", frames=1)
    old = tmp_path / "in" / "out"   # `batch in -o in/out` once; now `batch in -o elsewhere`
    (old / "a").mkdir(parents=True)
    (old / "a" / "driving.mp4").symlink_to(tmp_path / "in" / "a" / "driving.mp4")
    (old / "batch_report.jsonl").write_text('{"clip": "a", "status": "done"}\n')
    with caplog.at_level("INFO", logger="scail_backend.batch.inputs"):
        assert [c.name for c in discover(tmp_path / "in")] == ["a"]
        assert [c.name for c in discover(f"{tmp_path}/in/**/driving.mp4")] == ["a"]
    said = [r.getMessage() for r in caplog.records if "earlier batch output" in r.getMessage()]
    assert len(said) == 2 and all(str(old) in s and "batch_report.jsonl" in s for s in said)
    # named outright, it is searched: the user asked for it
    assert [c.name for c in discover(old)] == ["a"]


def test_an_empty_manifest_says_it_is_the_manifest_that_is_empty(tmp_path):
    for name, text in (("e.csv", ""), ("h.csv", "video\n"), ("e.jsonl", "\n# nothing\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(BatchInputError, match=f"the manifest .*{name} names no clip; give "):
            discover(tmp_path / name)


def test_a_csv_value_without_a_column_name_is_refused_with_its_line(tmp_path):
    write_clip(tmp_path / "b.mp4", frames=1)
    (tmp_path / "m.csv").write_text("video,name\n# x\nb.mp4,x,extra\n")
    with pytest.raises(BatchInputError, match=r"m.csv line 3: 1 value\(s\) with no column name "
                                              r"in the header \('extra'\)"):
        discover(tmp_path / "m.csv")
    (tmp_path / "blank.csv").write_text("video,,name\nb.mp4,oops,x\n")
    with pytest.raises(BatchInputError, match="blank.csv line 2: .*'oops'"):
        discover(tmp_path / "blank.csv")
    # empty trailing cells (a spreadsheet's export) are no value
    (tmp_path / "ok.csv").write_text("video,name,\nb.mp4,x,,,\n")
    assert [c.name for c in discover(tmp_path / "ok.csv")] == ["x"]


def test_a_batch_written_in_place_is_still_searched_by_later_batches(tmp_path):
    """`batch in/b -o in/b` leaves its report beside the user's own videos: a later batch
    over `in` must not take that folder for an earlier OUT_DIR and skip its clips."""
    _scail_folder(tmp_path / "in" / "a", frames=1)
    _scail_folder(tmp_path / "in" / "b" / "c", frames=1)
    (tmp_path / "in" / "b" / "batch_report.jsonl").write_text('{"clip": "c", "status": "done"}\n')
    assert [c.name for c in discover(tmp_path / "in")] == ["a", "b/c"]
    assert [c.name for c in discover(f"{tmp_path}/in/**/driving.mp4")] == ["a", "b/c"]
