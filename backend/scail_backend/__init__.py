"""SCAIL Pose Studio's engine: video I/O, estimators, the capsule renderer, the `scail-pose`
command line and the ZeroMQ server. Heavy libraries (taichi, mediapipe, bpy) are imported only
by the modules that use them, when they are used."""

__version__ = "0.1.0"
