"""Pose estimators: frames in, a PoseSequence out. Pick one with ``registry.resolve(name)``.

``mediapipe`` is the embedded CPU default (no download); ``nlf`` is the studio-grade path of the
reference (YOLOX + DWPose + NLF), which needs ``pretrained_weights/``. ``registry`` says which
can run here and why not.
"""

from .base import Estimator
from .registry import AUTO, availability, choose, create, names, resolve

__all__ = ["AUTO", "Estimator", "availability", "choose", "create", "names", "resolve"]
