"""Render a synthetic clip: ``driving.mp4`` plus its exact ground truth ``truth.npz``."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from scail_protocol.camera import blender_to_camera
from scail_protocol.contract import (DEFAULT_RESOLUTION, DRIVING_VIDEO, OUTPUT_FPS,
                                    REFERENCE_IMAGE_NAMES, RUN_OUTPUTS)
from scail_protocol.errors import OutputError, ScailError, VideoError
from scail_protocol.outputs import output_error
from scail_protocol.sequence import MAX_SIDE_PX, PoseSequence

from ..progress import ProgressFn, no_progress
from ..signals import deferred
from ..video.writer import Mp4Writer
from . import backdrop, blender_scene, bodies, cameras, motions, truth

log = logging.getLogger(__name__)

DEFAULT_SIZE = DEFAULT_RESOLUTION  # (H, W) working resolution, landscape
DEFAULT_FPS = float(OUTPUT_FPS)    # the conditioning video's rate
DEMO_MOTION, DEMO_CAMERA = "demo", "front"
TRUTH_NAME = "truth.npz"
SOURCE = "scail_backend.synth"  # meta["source"] of the truth files written here
REFERENCE_NAME = "ref.png"  # the first frame: the folder is then what `scail-pose run` reads
STAGE = "synth"
MAX_FRAMES = 100_000  # a guard against typos (about 1.7 h at 16 fps)


@dataclass(frozen=True)
class SynthClip:
    """What :func:`make_clip` wrote."""

    driving: Path
    truth: Path
    frames: int
    reference: Optional[Path] = None


@dataclass
class RenderedFrame:
    """One frame of :func:`iter_frames`."""

    index: int
    rgb: np.ndarray            # (H, W, 3) uint8, the figure over the backdrop
    alpha: np.ndarray          # (H, W) uint8 coverage of the figure (and props), 255 = opaque
    joints_world_m: np.ndarray     # (24, 3) evaluated SMPL joints, Blender world, metres
    landmarks_world_m: np.ndarray  # (L, 3) truth.landmark_table() points, Blender world, metres
    bbox: np.ndarray           # (4,) projected mesh extent, pixels


def _check_args(motion: str, camera: str, num_frames, size, fps):
    spec, setup = motions.get_motion(motion), cameras.get_camera(camera)
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ScailError(f"size must be (H, W) integers, got {size!r}") from None
    if not (2 <= height <= MAX_SIDE_PX and 2 <= width <= MAX_SIDE_PX) or height % 2 or width % 2:
        raise ScailError(f"size must be even on both sides (H.264) and within 2..{MAX_SIDE_PX}, "
                         f"got {height}x{width}")
    if not (np.isfinite(fps) and 1.0 <= fps <= 1000.0 and float(fps).is_integer()):
        raise ScailError(f"fps must be a whole number of frames per second in 1..1000 (the mp4 "
                         f"rate), got {fps}")
    if num_frames is None:
        num_frames = max(1, int(round(spec.duration_s * fps)))
    if not 1 <= int(num_frames) <= MAX_FRAMES:
        raise ScailError(f"num_frames must be in 1..{MAX_FRAMES}, got {num_frames}")
    return spec, setup, int(num_frames), (height, width), float(fps)


def iter_frames(*, motion: str = "wave", camera: str = "front", num_frames: Optional[int] = None,
                size=DEFAULT_SIZE, fps: float = DEFAULT_FPS, scratch_dir=None,
                progress: Optional[ProgressFn] = None,
                body: str = bodies.DEFAULT_BODY) -> Iterator[RenderedFrame]:
    """Build the scene and yield each rendered frame with its ground truth.

    Frame i shows the motion at time i / fps (past the motion's end it holds the last pose).
    ``scratch_dir`` receives one temporary PNG at a time (default: a private temp folder).
    The camera's K is ``cameras.intrinsics(cameras.get_camera(camera), size)``; ``body`` is a
    name from :data:`.bodies.BODIES`.
    """
    spec, setup, num, size, fps = _check_args(motion, camera, num_frames, size, fps)
    body = bodies.get_body(body)
    progress = progress or no_progress
    frames = motions.evaluate(spec.name, np.arange(num) / fps, body)
    stage, K = cameras.stage_to_world(setup), cameras.intrinsics(setup, size)
    background = backdrop.backdrop(stage, setup.height_m, K, size)
    table = truth.landmark_table(body)
    with deferred():  # Blender crashes if a SIGTERM's exception lands while it sets up
        handles = blender_scene.build_scene(frames, stage, K, size, fps, body)
    own_scratch = scratch_dir is None
    scratch = Path(tempfile.mkdtemp(prefix="scail-synth-") if own_scratch else scratch_dir)
    try:
        progress(STAGE, 0, num)
        for i in range(num):
            with deferred():  # ... or renders; a stop then ends the loop after this frame
                blender_scene.set_frame(handles, i)
                joints = blender_scene.joint_positions(handles)
                marks = truth.posed_landmarks(table, blender_scene.pose_matrices(handles))
                vertices_mm = blender_to_camera(blender_scene.body_vertices(handles))
                rgba = blender_scene.render_rgba(handles, scratch / f"frame_{i:06d}.png")
            yield RenderedFrame(i, backdrop.composite(rgba, background), rgba[..., 3].copy(),
                                joints, marks, truth.bbox_from_vertices(vertices_mm, K, size))
            progress(STAGE, i + 1, num)
    finally:
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def make_clip(out_dir, *, motion: str = "wave", camera: str = "front",
              num_frames: Optional[int] = None, size=DEFAULT_SIZE, fps: float = DEFAULT_FPS,
              progress: Optional[ProgressFn] = None,
              body: str = bodies.DEFAULT_BODY) -> SynthClip:
    """Render a synthetic clip and its ground truth into ``out_dir``.

    Writes ``out_dir/driving.mp4`` (H.264, ``size`` (H, W), ``fps``), ``out_dir/truth.npz``
    (a one-person PoseSequence; see :mod:`.truth`) and ``out_dir/ref.png`` (the first frame, as
    the reference image of the folder layout ``scail-pose run`` reads). All are written to a
    temporary folder inside ``out_dir`` and moved into place at the end, so a failure or a
    cancellation (the progress callback raising ``Cancelled``) leaves no partial output (nor
    the folder, when this call made it). ``out_dir`` must be new, empty of the run layout's
    files, or a synthetic clip made before (see :func:`check_clip_folder`).

    Args:
        out_dir: folder (created if missing).
        motion: one of :data:`MOTIONS` or ``"demo"``.
        camera: one of :data:`CAMERAS`.
        num_frames: frames to render; None = the motion's natural length at ``fps``.
        size: (H, W) pixels, both even.
        fps: whole frames per second (also the sampling rate of the motion).
        progress: ``progress("synth", done, total)`` once per frame.
        body: the figure's body type, one of :data:`.bodies.BODIES`.

    Raises:
        ScailError: unknown motion, camera or body (the message lists the valid names), bad
            size/fps.
        OutputError: ``out_dir`` holds footage or results that are not this module's
            (:func:`check_clip_folder`).
        VideoError: the video cannot be written.
    """
    spec, setup, num, size, fps = _check_args(motion, camera, num_frames, size, fps)
    body = bodies.get_body(body)
    out_dir = check_clip_folder(out_dir)
    made = _made_folders(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(out_dir, e) from None
    work = Path(tempfile.mkdtemp(prefix=".synth-", dir=out_dir))
    started = time.monotonic()
    done = False
    try:
        joints, marks, boxes = [], [], []
        with Mp4Writer(work / DRIVING_VIDEO, size, fps=int(fps)) as writer:
            for frame in iter_frames(motion=spec.name, camera=setup.name, num_frames=num,
                                     size=size, fps=fps, scratch_dir=work, progress=progress,
                                     body=body):
                writer.write(frame.rgb)
                if frame.index == 0:
                    _write_png(work / REFERENCE_NAME, frame.rgb)
                joints.append(frame.joints_world_m)
                marks.append(frame.landmarks_world_m)
                boxes.append(frame.bbox)
        setup_fields = ("distance_m", "height_m", "yaw_deg", "target_height_m", "fov_deg")
        meta = {"source": SOURCE, "motion": spec.name, "camera": setup.name,
                "body": body.name,
                "camera_setup": {k: getattr(setup, k) for k in setup_fields},
                "kp2d_note": "exact projections; face-68 NaN; occlusion not modelled"}
        sequence = truth.build_sequence(np.stack(joints), np.stack(marks), np.stack(boxes),
                                        truth.landmark_table(body), cameras.intrinsics(setup, size),
                                        size, fps, meta)
        sequence.save(work / TRUTH_NAME)
        driving, truth_path, reference = (out_dir / DRIVING_VIDEO, out_dir / TRUTH_NAME,
                                          out_dir / REFERENCE_NAME)
        os.replace(work / DRIVING_VIDEO, driving)
        os.replace(work / TRUTH_NAME, truth_path)
        os.replace(work / REFERENCE_NAME, reference)
        done = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not done:
            _remove_if_empty(made)
    elapsed = time.monotonic() - started
    log.info("synth: %d frames of %s/%s in %.1f s (%.2f s/frame)", num, spec.name, setup.name,
             elapsed, elapsed / num)
    return SynthClip(driving, truth_path, num, reference)


def check_clip_folder(out_dir) -> Path:
    """``out_dir`` as a Path, if a synthetic clip may be written there: a new folder, one
    without the run layout's files, or one holding a synthetic clip made before (a
    ``truth.npz`` this module wrote), which is replaced.

    Raises:
        OutputError: ``out_dir`` is a file; it holds a folder where the clip writes a file; it
            holds a ``driving.mp4`` or reference image that no synthetic clip made (someone's
            footage), or a run's results (``poses.npz``, ``rendered.mp4`` ...), which the new
            clip would leave describing another video.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} is a file, not a folder; give a folder for the clip")
    if not out_dir.is_dir():
        return out_dir
    folders = [n for n in (DRIVING_VIDEO, TRUTH_NAME, REFERENCE_NAME) if (out_dir / n).is_dir()]
    if folders:
        raise OutputError(f"{out_dir / folders[0]} is a folder, where the clip writes a file; "
                          f"choose a new folder for the clip")
    made_before = {DRIVING_VIDEO, REFERENCE_NAME} if _holds_synthetic_clip(out_dir) else set()
    footage = [n for n in (DRIVING_VIDEO, *REFERENCE_IMAGE_NAMES)
               if n not in made_before and (out_dir / n).exists()]
    if footage:
        raise OutputError(f"{out_dir} already holds {', '.join(footage)}, which no synthetic "
                          f"clip made; choose a new folder for the clip")
    results = [n for n in RUN_OUTPUTS if (out_dir / n).exists()]
    if results:
        raise OutputError(f"{out_dir} holds results of an earlier run ({', '.join(results)}) "
                          f"that a new clip would leave describing another video; choose a new "
                          f"folder, or delete them first")
    return out_dir


def _holds_synthetic_clip(folder: Path) -> bool:
    """Whether ``folder``'s truth.npz is one this module wrote (its meta says so)."""
    try:
        return PoseSequence.load(folder / TRUTH_NAME).meta.get("source") == SOURCE
    except Exception:  # missing, unreadable or not a PoseSequence: not ours
        return False


def _made_folders(out_dir: Path) -> list:
    """The folders ``out_dir.mkdir(parents=True)`` is about to create, deepest first."""
    missing = []
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_if_empty(folders: list) -> None:
    for folder in folders:   # deepest first
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or already gone): leave it and its parents


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise VideoError(f"cannot write {path}")


def make_demo(out_dir, progress: Optional[ProgressFn] = None) -> SynthClip:
    """The README demo: 64 frames (4 s at 16 fps), 512x896, walk in + wave + turn away."""
    return make_clip(out_dir, motion=DEMO_MOTION, camera=DEMO_CAMERA, size=DEFAULT_SIZE,
                     fps=DEFAULT_FPS, progress=progress)
