"""The studio-grade estimator of the reference: YOLOX-L + DWPose-L (ONNX) and NLF-L (TorchScript).

Modules, one idea each: ``detector`` (letterbox, decode, NMS), ``wholebody`` (crops, SimCC,
133 -> 134), ``nlf3d`` (masked full-frame batches, ``detect_smpl_batched``), ``models`` (loading,
file checks, devices), ``estimator`` (streaming assembly into a PoseSequence). Importing this
package imports neither torch nor onnxruntime.
"""

from .estimator import NAME, NLFEstimator

__all__ = ["NAME", "NLFEstimator"]
