"""Pose estimators: frames in, a PoseSequence out. Pick one with ``base.resolve(name)``.

``mediapipe`` is the embedded CPU default (no download); ``nlf`` is the studio-grade path of the
reference (YOLOX + DWPose + NLF), which needs ``pretrained_weights/``.
"""

from .base import AUTO, Estimator, choose, create, names, resolve

__all__ = ["AUTO", "Estimator", "choose", "create", "names", "resolve"]
