"""One batch worker: estimates clips one after another with models loaded once.

:class:`ClipEstimator` is a plain class; the batch wraps it as a Ray actor (``ray.remote``), one
per worker, so each worker process creates its estimators once and reuses them for every clip it
gets (``estimate_folder`` resets an estimator's per-video state at each call). Each clip goes
through :func:`scail_backend.pipeline.estimate_folder`, the first half of ``scail-pose run``;
the poses it returns are rendered and written by a render task (``batch.render``), the second
half, so a batch writes what ``run`` writes.
"""

from __future__ import annotations

import time
from pathlib import Path

from scail_protocol.errors import ScailError

from .clipdir import prepare, remove_partial
from .inputs import Clip
from .report import FAILED, one_line

ESTIMATED = "estimated"   # an estimation outcome: the poses go on to a render task

# manifest column -> run_folder keyword
CLIP_KEYWORDS = {"estimator": "estimator", "resolution": "resolution", "smooth": "smoothing",
                 "fps": "fps", "arch": "arch"}


def run_options(defaults: dict, clip_options: dict) -> dict:
    """``run_folder`` keywords for a clip: the batch's, overridden by the clip's own, checked
    as the command line checks them.

    Raises:
        ScailError: a clip option that ``run`` would refuse (one line).
    """
    from .. import options as checks
    from ..video.timing import check_fps

    merged = dict(defaults)
    for key, value in clip_options.items():
        merged[CLIP_KEYWORDS[key]] = value
    if merged.get("resolution") is not None:
        merged["resolution"] = checks.check_resolution(merged["resolution"])
    checks.check_estimator(merged.get("estimator") or "auto")
    if merged.get("fps") is not None:
        merged["fps"] = check_fps(merged["fps"])
    if merged.get("smoothing") is not None:
        from ..smoothing import parse_strength

        try:
            parse_strength(merged["smoothing"])
        except ValueError as e:
            raise ScailError(str(e)) from None
    return merged


class ClipEstimator:
    """Estimates clips in their output folders; keeps one estimator per (name, weights, device).

    Args:
        defaults: keywords of ``pipeline.run_folder`` for every clip (estimator as a name,
            resolution, arch, weights_dir, smoothing, fps, use_align, align_options, device,
            cleanup); a clip's own options (manifest columns) override them.
        progress_queue: a ``ray.util.queue.Queue`` for the driver's frame bar, or None.
    """

    def __init__(self, defaults: dict, progress_queue=None):
        self.defaults = dict(defaults)
        self._estimators = {}
        self._queue = progress_queue

    def estimate(self, clip: dict, folder: str) -> tuple:
        """Estimate one clip (``Clip.to_dict()``) in ``folder`` (made a SCAIL folder first).

        Returns:
            (outcome, poses): outcome {"status": "estimated", "frames", "arch" (the clip's
            renderer arch), "seconds"} and the ``pipeline.FolderPoses`` to render; or
            ({"status": "failed", "error": one line, "seconds"}, None). Never raises for a
            bad clip.
        """
        start = time.perf_counter()
        target = Path(folder)
        try:
            poses, arch = self._estimate(Clip.from_dict(clip), target)
        except ScailError as e:
            error = one_line(e)
        except Exception as e:  # a bug or a library error: one line, the batch goes on
            error = one_line(f"{type(e).__name__}: {e}")
        else:
            return {"status": ESTIMATED, "frames": poses.sequence.num_frames, "arch": arch,
                    "seconds": time.perf_counter() - start}, poses
        remove_partial(target)
        return {"status": FAILED, "error": error, "seconds": time.perf_counter() - start}, None

    def _estimate(self, clip: Clip, folder: Path):
        from ..pipeline import estimate_folder

        options = run_options(self.defaults, clip.options)
        prepare(clip, folder)
        options["estimator"] = self._estimator(options.get("estimator") or "auto",
                                               options.get("weights_dir"),
                                               options.get("device"))
        progress = _FrameReporter(self._queue, clip.name) if self._queue is not None else None
        poses = estimate_folder(folder, progress=progress, warm_renderer=False,
                                source_folder=clip.video.parent, **options)
        return poses, options.get("arch") or "auto"

    def _estimator(self, name: str, weights_dir, device):
        from ..estimators.registry import resolve

        key = (name, weights_dir, device)
        if key not in self._estimators:
            self._estimators[key], _ = resolve(name, weights_dir=weights_dir, device=device)
        return self._estimators[key]

    def ready(self) -> bool:
        """True once the worker process is up (lets the driver wait for start-up)."""
        return True

    def close(self) -> None:
        """Close the estimators (their models and native resources)."""
        for estimator in self._estimators.values():
            estimator.close()
        self._estimators = {}


class _FrameReporter:
    """An ``estimate_folder`` progress callback that sends (clip, frames estimated) to the driver,
    at most every REPORT_EVERY_S seconds (each send is a small Ray call)."""

    REPORT_EVERY_S = 0.5

    def __init__(self, queue, clip: str):
        self.queue, self.clip = queue, clip
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        from ..pipeline import ESTIMATE_STAGE

        now = time.monotonic()
        if stage != ESTIMATE_STAGE or now - self.last < self.REPORT_EVERY_S:
            return
        self.last = now
        try:
            self.queue.put_nowait((self.clip, int(done)))
        except Exception:  # a full or gone queue only costs the progress bar
            pass
