"""One batch worker: runs clips one after another with models loaded once.

:class:`ClipRunner` is a plain class; the batch wraps it as a Ray actor (``ray.remote``), one per
worker, so each worker process creates its estimators once and reuses them for every clip it
gets (``run_folder`` resets an estimator's per-video state at each call). Each clip goes through
:func:`scail_backend.pipeline.run_folder`, the code of ``scail-pose run``, so a batch writes what
``run`` writes.
"""

from __future__ import annotations

import time
from pathlib import Path

from scail_protocol.errors import ScailError

from .clipdir import prepare, remove_partial
from .inputs import Clip
from .report import DONE, FAILED, one_line

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


class ClipRunner:
    """Runs clips into their output folders; keeps one estimator per (name, weights, device).

    Args:
        defaults: keywords of ``pipeline.run_folder`` for every clip (estimator as a name,
            resolution, arch, weights_dir, smoothing, fps, use_align, align_options, device,
            cleanup); a clip's own options (manifest columns) override them.
    """

    def __init__(self, defaults: dict, progress_queue=None):
        self.defaults = dict(defaults)
        self._estimators = {}
        self._queue = progress_queue  # a ray.util.queue.Queue for the driver's frame bar

    def run(self, clip: dict, folder: str) -> dict:
        """Run one clip (``Clip.to_dict()``) into ``folder``.

        Returns:
            {"status": "done", "frames", "found", "seconds", "warnings"} or {"status":
            "failed", "error": one line, "seconds"}. Never raises for a bad clip.
        """
        start = time.perf_counter()
        target = Path(folder)
        try:
            result = self._run(Clip.from_dict(clip), target)
        except ScailError as e:
            remove_partial(target)
            return {"status": FAILED, "error": one_line(e), "seconds": time.perf_counter() - start}
        except Exception as e:  # a bug or a library error: one line, the batch goes on
            remove_partial(target)
            return {"status": FAILED, "error": one_line(f"{type(e).__name__}: {e}"),
                    "seconds": time.perf_counter() - start}
        return {"status": DONE, "frames": result.sequence.num_frames,
                "found": result.frames_with_person, "warnings": list(result.warnings),
                "seconds": time.perf_counter() - start}

    def _run(self, clip: Clip, folder: Path):
        from ..pipeline import run_folder

        options = run_options(self.defaults, clip.options)
        prepare(clip, folder)
        options["estimator"] = self._estimator(options.get("estimator") or "auto",
                                               options.get("weights_dir"),
                                               options.get("device"))
        progress = _FrameReporter(self._queue, clip.name) if self._queue is not None else None
        return run_folder(folder, progress=progress, **options)

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
    """A ``run_folder`` progress callback that sends (clip, frames estimated) to the driver,
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
