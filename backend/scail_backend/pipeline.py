"""The main jobs: a video becomes a PoseSequence (``extract_video``), and a folder holding
``driving.mp4`` becomes ``poses.npz`` + ``rendered.mp4`` (``run_folder``, like the reference CLI).

Threads, for speed on two cores (measured in ``bench/end_to_end.py``):

* extract: a background thread decodes and resizes (``video.reader``) into a small bounded queue
  while the estimator runs on the calling thread; memory stays bounded whatever the length.
* run: the renderer's one-off start-up (taichi initialisation and kernel compilation) runs in a
  background thread during estimation; then ``render.pipeline.render_sequence`` renders in a
  background thread while the calling thread encodes. Rendering cannot start before estimation
  ends: its depth shading is normalised over the whole clip (docs/pipeline.md §6.3, §14.13).

``run_folder`` is ``estimate_folder`` (checks, estimation, alignment) then ``write_folder``
(render, encode, save); ``scail-pose batch`` runs the two halves in different processes.

Progress callbacks are only ever called on the calling thread (stages "decode", "estimate",
"render"), so a callback may raise Cancelled; every thread is stopped and every temporary file
removed when anything fails.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from scail_protocol import contract
from scail_protocol.camera import intrinsics_from_fov
from scail_protocol.contract import (ALIGNED_POSES_FILE, ALIGNED_RENDERED_FILE, DRIVING_VIDEO,
                                     POSES_FILE, REFERENCE_IMAGE_NAMES, RENDERED_FILE)
from scail_protocol.errors import RenderError, VideoError
from scail_protocol.outputs import atomic_path, check_output_file
from scail_protocol.sequence import PoseSequence

from .background import Background
from .estimators.base import Estimator
from .estimators.registry import AUTO, resolve
from .file_hash import sha256_of
from .progress import ProgressFn, no_progress
from .render.pipeline import render_sequence
from .video.reader import open_video

if TYPE_CHECKING:
    from .align.apply import AlignResult

log = logging.getLogger(__name__)

DECODE_STAGE = "decode"
ESTIMATE_STAGE = "estimate"
PREFETCH_FRAMES = 16         # decoded frames waiting for the estimator (~1.4 MB each at 896x512);
                             # decoding runs ahead while the estimator loads its models
OUTPUT_FPS = float(contract.OUTPUT_FPS)  # the conditioning video's rate (scail_protocol.contract)
REPEAT_TOLERANCE = 0.05     # --fps up to 5 % above the source's rate: too few repeats to mention


@dataclass
class RunResult:
    """What ``run_folder`` produced.

    Attributes:
        folder: the job folder.
        poses: path of the written PoseSequence (``DIR/poses.npz``).
        video: path of the written conditioning video (``DIR/rendered.mp4``).
        sequence: the PoseSequence written to ``poses``.
        estimator_reason: which estimator ran and why (one sentence).
        reference_image: the reference image found, or None.
        frames_with_person: frames where a person was found.
        render_report: whatever the renderer reported.
        seconds: wall time per phase ("extract", "render", "total").
        warnings: notes for the user (a clip not at 16 fps, no person found, damaged video,
            an alignment fallback).
        alignment: with ``use_align``, the record stored in ``sequence.meta["alignment"]``
            (``poses``/``video``/``sequence`` are then the aligned ones).
    """

    folder: Path
    poses: Path
    video: Path
    sequence: PoseSequence
    estimator_reason: str
    reference_image: Optional[Path]
    frames_with_person: int
    render_report: object = None
    seconds: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    alignment: Optional[dict] = None


def extract_video(video_path, *, estimator: Union[str, Estimator] = AUTO, resolution=None,
                  progress: Optional[ProgressFn] = None, weights_dir=None,
                  smoothing=None, fps: Optional[float] = None,
                  cleanup=None, device: Optional[str] = None,
                  warnings: Optional[list] = None) -> PoseSequence:
    """Estimate the poses of every frame of a video (or image folder, or image).

    Args:
        video_path: video file, image file or folder of images.
        estimator: "auto", "mediapipe", "nlf", or an Estimator instance (left open).
        resolution: (H, W) working size for landscape input (swapped for portrait and square);
            None = 512 x 896 (docs/pipeline.md §1.2).
        progress: ``progress(stage, done, total)`` for stages "decode" and "estimate".
        weights_dir: where the nlf weights live (else $SCAIL_WEIGHTS_DIR, else the project's).
        smoothing: temporal smoothing strength (``smoothing.smooth_sequence``): None, "off" or 0
            = none (the default, as the reference); "light", "medium", "strong", "default" or a
            number in (0, 1].
        fps: resample the clip in time to this rate (frames per second) by nearest timestamp
            (``video.timing``; e.g. 16 so that the 16 fps conditioning video plays at the
            source's speed); None = every source frame at the source's rate (the reference's
            behaviour; a rate other than 16 fps then gets a one-line warning).
        cleanup: a ``cleanup.CleanupOptions`` (most people kept, gap filling, foot locking);
            None = every person found, no gap filling, no foot locking (the reference's).
            People are always linked into identities (``tracking.track_people``).
        device: where the estimator's models run: None or "auto" (CUDA when present), "cuda"
            (an error up front without CUDA) or "cpu"; the mediapipe estimator is CPU only.
        warnings: a list that gets the lines warned about (logged all the same): the clip's
            rate against 16 fps (:func:`speed_notice`, :func:`repeat_notice`) and a damaged or
            truncated input (:func:`damage_warning`), for a caller that passes them on (the
            server's job report); None = only logged.

    Returns:
        PoseSequence at the working size, one entry per source frame (per resampled frame with
        ``fps``), fps = the source's rate (or ``fps``);
        meta holds the estimator (name, version, why), the source (path, sha256, fps, size),
        the working size and, when smoothed, the smoothing parameters.

    Raises:
        ValueError: an unknown smoothing strength (before any work is done).
        VideoError: the input cannot be read (see ``video.reader.open_video``).
        WeightsMissing, EstimatorError: the estimator cannot be created.
        Cancelled: the progress callback cancelled the job.
    """
    sequence, source, notices = _extract(Path(video_path), estimator, resolution, progress,
                                         weights_dir, smoothing=smoothing, fps=fps,
                                         cleanup=cleanup, device=device)
    if warnings is not None:
        damage = damage_warning(video_path, source)
        warnings.extend(notices + ([damage] if damage else []))
    return sequence


def _extract(path: Path, estimator, resolution, progress, weights_dir, on_open=None,
             smoothing=None, fps=None, cleanup=None, device=None):
    """extract_video's work; ``on_open(source)`` runs once the input and estimator are ready.

    Returns (sequence, source, the notices on the clip's rate it logged: a list of lines).
    """
    from .cleanup import CleanupOptions, clean_sequence
    from .smoothing import parse_strength
    from .tracking import track_people

    strength = parse_strength(smoothing)  # a bad value fails before the long work
    cleanup = CleanupOptions.from_value(cleanup)
    progress = progress or no_progress
    source = open_video(path, resolution, fps=fps)
    log.info("%s: %s, %dx%d at %g fps, %s frames -> working size %dx%d", path, source.kind,
             source.source_size[1], source.source_size[0], source.source_fps,
             source.num_frames if source.num_frames is not None else "unknown",
             source.size[1], source.size[0])
    notices = [n for n in (
        speed_notice(source.fps, path, source.source_fps if source.resampled else None),
        repeat_notice(source.fps, source.source_fps, path) if source.resampled else None) if n]
    for notice in notices:
        log.warning("%s", notice)
    hasher = _FileHasher(path) if path.is_file() else None
    owned = None
    try:
        if isinstance(estimator, Estimator):
            est, reason = estimator, estimator.chosen_because or f"{estimator.name} was given"
        else:
            owned, reason = resolve(estimator, weights_dir=weights_dir, device=device)
            est = owned
        if on_open is not None:  # the input is readable and the estimator exists
            on_open(source)
        with Background(source, depth=PREFETCH_FRAMES, name="scail-decode") as frames:
            total = source.num_frames or 0

            def report(stage, done, stage_total):
                decoded = frames.produced
                progress(DECODE_STAGE, decoded, total if total >= decoded else 0)
                progress(stage, done, stage_total)

            sequence = est.estimate(frames, size=source.size, fps=source.fps,
                                    K=intrinsics_from_fov(*source.size), total=total,
                                    progress=report)
            progress(DECODE_STAGE, frames.produced, frames.produced)
    except BaseException:
        if hasher:
            hasher.cancel()
        raise
    finally:
        if owned is not None:
            owned.close()
    meta = dict(sequence.meta, estimator_reason=reason,
                source=dict(source.describe(), sha256=hasher.result() if hasher else None,
                            frames=source.frames_read, problems=list(source.problems)),
                working_size=list(source.size), output_fps=OUTPUT_FPS)
    sequence = track_people(sequence.replace(meta=meta), max_people=cleanup.max_people,
                            order=cleanup.order)
    sequence = clean_sequence(sequence, fill_gaps=cleanup.fill_gaps, take_fit=cleanup.take_fit,
                              smoothing=strength, foot_lock=cleanup.foot_lock)
    return sequence, source, notices


def speed_notice(fps: float, path, source_fps: Optional[float] = None) -> Optional[str]:
    """One line for a clip whose rate is not the conditioning video's 16 fps (docs/pipeline.md §8):
    rendered at 16 fps its motion plays slower or faster; None when the rates agree.

    Args:
        fps: the rate of the frames estimated (the source's, or the --fps it was resampled to).
        path: the input, as the line names it.
        source_fps: the source's own rate when it was resampled to ``fps``; None when not.
    """
    from .video.timing import same_rate

    if same_rate(fps, OUTPUT_FPS):
        return None
    name = Path(path).name
    rate = (f"{name} is {fps:g} fps" if source_fps is None or same_rate(fps, source_fps) else
            f"{name} ({source_fps:g} fps) is resampled to {fps:g} fps")
    factor = fps / OUTPUT_FPS
    pace = f"{factor:.3g}x slower" if factor > 1 else f"{1 / factor:.3g}x faster"
    return (f"{rate}; the conditioning video is always {OUTPUT_FPS:g} fps, so its motion will "
            f"play {pace} than filmed (--fps {OUTPUT_FPS:g} resamples it in time to play at the "
            f"filmed speed)")


def damage_warning(path, source) -> Optional[str]:
    """One line naming what was wrong with a damaged or truncated input once it was read
    (``source.problems``: undecodable packets, a stream that ends early, ...); None when
    nothing was."""
    if not source.problems:
        return None
    return f"{Path(path).name}: {'; '.join(source.problems)}"


def repeat_notice(fps: float, source_fps: float, path) -> Optional[str]:
    """One line when resampling to ``fps`` repeats frames (``fps`` above the source's own
    ``source_fps``, frames per second); None otherwise."""
    ratio = fps / source_fps
    if ratio < 1.0 + REPEAT_TOLERANCE:
        return None
    return (f"{Path(path).name} is {source_fps:g} fps, so --fps {fps:g} repeats each frame about "
            f"{ratio:.2g} times on average (no motion is made up between frames)")


def run_folder(folder, *, estimator: Union[str, Estimator] = AUTO, resolution=None,
               arch: str = "auto", progress: Optional[ProgressFn] = None,
               weights_dir=None, smoothing=None, fps: Optional[float] = None, use_align: bool = False,
               align_options: Optional[dict] = None, cleanup=None,
               device: Optional[str] = None) -> RunResult:
    """The reference CLI's job: ``DIR/driving.mp4`` -> ``DIR/poses.npz`` + ``DIR/rendered.mp4``.

    With ``use_align`` the poses are aligned to the reference image (``scail_backend.align``,
    docs/pipeline.md §9) and the outputs are ``DIR/poses.npz`` (unaligned),
    ``DIR/poses_aligned.npz`` and ``DIR/rendered_aligned.mp4`` (rendered from the aligned poses);
    the reference image is then required.

    The reference image (``ref_image.jpg``, ``ref_image.png``, ``ref.jpg`` or ``ref.png``) is
    looked for but not required: it only matters for alignment, so its absence is a warning
    (the reference requires it even without alignment). A clip where nobody is found still
    gives a valid all-black video of the right length, with a warning (with ``use_align`` too:
    there is nothing to align, and the aligned outputs are the unaligned poses with the
    default camera, as an alignment that fell back). All outputs appear
    together at the end; a failure leaves the folder as it was (no partial files).

    The two halves, :func:`estimate_folder` and :func:`write_folder`, may also run apart (the
    batch estimates in one process and renders in another).

    Args:
        folder: the job folder.
        estimator, resolution, weights_dir, smoothing, fps, cleanup, device: as
            :func:`extract_video`.
        arch: renderer backend ("auto", "cpu", "cuda", ...), passed to the renderer.
        progress: ``progress(stage, done, total)`` for decode, estimate and the render stages.
        use_align: align to the reference image.
        align_options: keywords of ``align.align_to_reference`` (estimator, fallback, adapt).

    Raises:
        VideoError: the folder or its driving video cannot be read.
        ScailError subclasses from the estimator or renderer; Cancelled.
    """
    poses = estimate_folder(folder, estimator=estimator, resolution=resolution, arch=arch,
                            progress=progress, weights_dir=weights_dir, smoothing=smoothing,
                            fps=fps, use_align=use_align, align_options=align_options,
                            cleanup=cleanup, device=device)
    return write_folder(poses, arch=arch, progress=progress)


@dataclass
class FolderPoses:
    """The first half of ``run_folder`` (:func:`estimate_folder`): what the second half
    (:func:`write_folder`) renders and saves. Small (arrays of joints), so it travels between
    processes as it is.

    Attributes:
        folder: the job folder.
        sequence: the estimated PoseSequence (meta names the reference image).
        aligned: with ``use_align``, the ``align.AlignResult``; else None.
        reference_image: the reference image found, or None.
        frames_with_person: frames where a person was found.
        warnings: notes for the user so far.
        seconds: wall time of "extract" and "align".
    """

    folder: Path
    sequence: PoseSequence
    aligned: Optional["AlignResult"]
    reference_image: Optional[Path]
    frames_with_person: int
    warnings: list
    seconds: dict


def estimate_folder(folder, *, estimator: Union[str, Estimator] = AUTO, resolution=None,
                    arch: str = "auto", progress: Optional[ProgressFn] = None,
                    weights_dir=None, smoothing=None, fps: Optional[float] = None,
                    use_align: bool = False, align_options: Optional[dict] = None,
                    cleanup=None, device: Optional[str] = None,
                    warm_renderer: bool = True, source_folder=None) -> FolderPoses:
    """``run_folder`` up to the render: checks, estimation and (with ``use_align``) alignment.

    Args:
        as :func:`run_folder`; ``arch`` is checked here.
        warm_renderer: start the renderer (taichi, ``arch``) in a background thread during
            estimation, as ``run`` does; False when another process renders.
        source_folder: where the clip's files came from, as the notes name it (the batch
            estimates in a folder of links to them); None = ``folder``.

    Returns:
        The :class:`FolderPoses` for :func:`write_folder`. Writes nothing.

    Raises:
        as :func:`run_folder` (except the renderer's errors).
    """
    start = time.perf_counter()
    folder = Path(folder)
    driving = _driving_video(folder)
    check_run_outputs(folder, use_align=use_align)
    warnings = []
    reference = next((folder / n for n in REFERENCE_IMAGE_NAMES if (folder / n).is_file()), None)
    if reference is None and use_align:
        from scail_protocol.errors import AlignError

        raise AlignError(f"alignment needs a reference image in {folder} "
                         f"({', '.join(REFERENCE_IMAGE_NAMES)})")
    if reference is None:   # only alignment reads it: a note, not a warning
        log.info("no reference image in %s (%s); only alignment (--use-align) needs one",
                 source_folder or folder, ", ".join(REFERENCE_IMAGE_NAMES))
    arch = _check_arch(arch)
    warmups = []

    def warm(src):
        if warm_renderer:
            warmups.append(_RendererWarmup(src.size, arch))

    try:
        sequence, source, notices = _extract(
            driving, estimator, resolution, progress, weights_dir, on_open=warm,
            smoothing=smoothing, fps=fps, cleanup=cleanup, device=device)
    finally:  # no thread outlives the call, whatever happened
        for warmup in warmups:
            warmup.join()
    extracted = time.perf_counter()
    found = int(sequence.present().any(0).sum()) if sequence.num_people else 0
    if found == 0:
        video = ALIGNED_RENDERED_FILE if use_align else RENDERED_FILE
        warnings.append(f"no person found in any of the {sequence.num_frames} frames; "
                        f"{video} will be all black" + ("" if not use_align else
                                                        " (there is nothing to align)"))
    sequence = sequence.replace(meta=dict(sequence.meta, reference_image=(
        reference.name if reference else None)))
    for text in warnings:
        log.warning("%s", text)
    damage = damage_warning(driving, source)
    # logged already (by _extract, and by the reader as it read); kept for the caller (batch
    # reports, job reports)
    warnings[:0] = notices + ([damage] if damage else [])
    aligned = None
    if use_align and found == 0:   # the outputs of an alignment that fell back, all black
        from .align import CLAMPED, nothing_to_align

        aligned = nothing_to_align(sequence, reference, "nobody in the driving poses",
                                   fallback=(align_options or {}).get("fallback") or CLAMPED)
    elif use_align:
        from .align import align_to_reference

        aligned = align_to_reference(sequence, reference, weights_dir=weights_dir,
                                     progress=progress, **(align_options or {}))
        if aligned.fallback:
            warnings.append(aligned.message)
    return FolderPoses(folder=folder, sequence=sequence, aligned=aligned,
                       reference_image=reference, frames_with_person=found, warnings=warnings,
                       seconds={"extract": extracted - start,
                                "align": time.perf_counter() - extracted})


def write_folder(poses: FolderPoses, *, arch: str = "auto",
                 progress: Optional[ProgressFn] = None) -> RunResult:
    """``run_folder`` from the render on: render, encode and save ``poses`` into its folder
    (all outputs renamed into place together at the end).

    Args:
        poses: from :func:`estimate_folder`.
        arch: renderer backend.
        progress: ``progress(stage, done, total)`` for the render stages.

    Raises:
        RenderError and other ScailError subclasses from the renderer; Cancelled. A failure
        leaves the folder as it was.
    """
    start = time.perf_counter()
    aligned = poses.aligned
    paths, video, report = _write_outputs(poses.folder, poses.sequence, _check_arch(arch),
                                          progress,
                                          aligned=aligned.sequence if aligned else None)
    sequence = aligned.sequence if aligned else poses.sequence
    render = poses.seconds["align"] + time.perf_counter() - start
    return RunResult(folder=poses.folder, poses=paths, video=video, sequence=sequence,
                     alignment=aligned.record if aligned else None,
                     estimator_reason=sequence.meta.get("estimator_reason", ""),
                     reference_image=poses.reference_image,
                     frames_with_person=poses.frames_with_person, render_report=report,
                     warnings=list(poses.warnings),
                     seconds={"extract": poses.seconds["extract"], "render": render,
                              "total": poses.seconds["extract"] + render})


def _driving_video(folder: Path) -> Path:
    if not folder.exists():
        raise VideoError(f"folder not found: {folder}")
    if not folder.is_dir():
        raise VideoError(f"{folder} is not a folder; `run` expects a folder holding "
                         f"{DRIVING_VIDEO} (use `extract` for a single video)")
    try:
        os.listdir(folder)
    except OSError as e:
        raise VideoError(f"cannot read folder {folder}: {e.strerror}") from None
    driving = folder / DRIVING_VIDEO
    if driving.is_dir():
        raise VideoError(f"{driving} is a folder, not a video; `run DIR` reads the video file "
                         f"DIR/{DRIVING_VIDEO}")
    if not driving.is_file():
        raise VideoError(f"no {DRIVING_VIDEO} in {folder}; `run DIR` reads DIR/{DRIVING_VIDEO} "
                         f"(plus a reference image such as ref.jpg)")
    return driving


def _check_arch(arch: str) -> str:
    from .render.taichi_runtime import ARCHES

    if arch not in ARCHES:
        raise RenderError(f"unknown renderer arch {arch!r}; use one of {', '.join(ARCHES)}")
    return arch


def _write_outputs(folder: Path, sequence: PoseSequence, arch: str, progress, aligned=None):
    """Render and save into temporary files beside the targets, then rename both into place
    (see :mod:`scail_protocol.outputs`). With ``aligned`` (the aligned sequence) the video is
    rendered from it into rendered_aligned.mp4, beside poses_aligned.npz and poses.npz; returns
    the aligned poses' path then."""
    if aligned is not None:
        poses, video = folder / ALIGNED_POSES_FILE, folder / ALIGNED_RENDERED_FILE
        with atomic_path(video) as video_temp, atomic_path(poses) as poses_temp, \
                atomic_path(folder / POSES_FILE) as unaligned_temp:
            report = render_sequence(aligned, video_temp, arch=arch, progress=progress)
            aligned.save(poses_temp)
            sequence.save(unaligned_temp)
        return poses, video, dataclasses.replace(report, path=video)
    poses, video = folder / POSES_FILE, folder / RENDERED_FILE
    with atomic_path(video) as video_temp, atomic_path(poses) as poses_temp:
        report = render_sequence(sequence, video_temp, arch=arch, progress=progress)
        sequence.save(poses_temp)
    return poses, video, dataclasses.replace(report, path=video)


def check_run_outputs(folder, use_align: bool = False) -> None:
    """Refuse, before any work, a run whose outputs would replace one of its inputs
    (``DIR/poses.npz`` or ``DIR/rendered.mp4`` being the driving video or the reference
    image through a link), or that cannot be written (a folder of that name).

    Raises:
        OutputError: one line naming the output and the input.
    """
    folder = Path(folder)
    inputs = [folder / DRIVING_VIDEO] + [folder / n for n in REFERENCE_IMAGE_NAMES
                                         if (folder / n).exists()]
    for name in contract.run_outputs(use_align):
        check_output_file(folder / name, inputs)


# --- helpers -------------------------------------------------------------------------------------

class _RendererWarmup:
    """Initialise taichi and compile the capsule kernel in the background (one empty frame)."""

    def __init__(self, size, arch: str):
        self._thread = threading.Thread(target=self._run, args=(size, arch),
                                        name="scail-render-warmup", daemon=True)
        self._thread.start()

    @staticmethod
    def _run(size, arch: str) -> None:
        try:
            from scail_protocol.capsules import DepthRange, frame_capsules

            from .render.pipeline import get_renderer

            empty = frame_capsules(np.full((1, 18, 3), np.nan))
            get_renderer(size, arch).render([empty], DepthRange.from_z_range(0.0, 0.0),
                                            intrinsics_from_fov(*size))
        except Exception as e:  # the real render reports any problem properly
            log.debug("renderer warm-up failed: %s", e)

    def join(self) -> None:
        self._thread.join()


class _FileHasher:
    """sha256 of a file (``file_hash.sha256_of``), computed in a background thread (hashlib
    releases the GIL)."""

    def __init__(self, path: Path):
        self._digest: Optional[str] = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path,), name="scail-hash",
                                        daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._digest = sha256_of(path, cancelled=self._cancel)
        except OSError as e:
            log.warning("cannot hash %s: %s", path, e.strerror)

    def cancel(self) -> None:
        self._cancel.set()
        self._thread.join()

    def result(self) -> Optional[str]:
        self._thread.join()
        return self._digest
