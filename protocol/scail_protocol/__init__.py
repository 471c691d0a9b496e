"""SCAIL Pose Studio's shared protocol: the PoseSequence data model, its file format, the joint
tables, palettes, camera maths and capsule scene, and the ZeroMQ message format.

Needs only numpy (and pyzmq for the wire); it runs inside Blender's own Python too.
"""

from .errors import ProtocolError, ScailError, SequenceError
from .sequence import SCHEMA_VERSION, PoseSequence

__version__ = "0.1.0"

__all__ = ["PoseSequence", "SCHEMA_VERSION", "ScailError", "SequenceError", "ProtocolError",
           "__version__"]
