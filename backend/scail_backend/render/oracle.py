"""The reference capsule renderer, re-written from its specification (docs/pipeline.md §6.2-6.4).

Sphere tracing of the scene SDF: one ray per pixel through integer pixel coordinates, up to 300
steps over *every* capsule, central-difference normals of the scene SDF, head-light shading,
depth attenuation, truncation to uint8; float32 throughout, like the reference's taichi kernel.
It is slow on purpose: it is the test oracle for :mod:`capsule_renderer` and the baseline of
``bench/render_speed.py``. Unlike the reference, the kernel is compiled once per process (the
capsules are kernel arguments), which makes this baseline a little faster than the original.
"""

import logging

import numpy as np

from scail_protocol.capsules import CAPSULE_RADIUS_MM, CapsuleScene, DepthRange

from .sdf_funcs import sdf_funcs
from .taichi_runtime import generation, init_taichi

log = logging.getLogger(__name__)

_KERNEL = {}
_A, _B = 0, 3  # columns of the segment start and end in the capsule rows


def _build_kernel():
    import taichi as ti

    f = sdf_funcs()
    march, fd_normal, shade = f["march"], f["fd_normal"], f["shade"]

    @ti.kernel
    def render(img: ti.types.ndarray(dtype=ti.u8, ndim=3), caps: ti.types.ndarray(ndim=2),
               n: ti.i32, fx: ti.f32, fy: ti.f32, cx: ti.f32, cy: ti.f32, radius: ti.f32,
               znear: ti.f32, zfar: ti.f32, depth_near: ti.f32, depth_far: ti.f32):
        for y, x in ti.ndrange(img.shape[0], img.shape[1]):
            ray = ti.math.vec3((ti.cast(x, ti.f32) - cx) / fx, (ti.cast(y, ti.f32) - cy) / fy,
                               1.0).normalized()
            rgba = ti.math.vec4(0.0)
            hit, t = march(caps, 0, n, ray, radius, znear, zfar, _A, _B)
            if hit >= 0:
                p = t * ray
                normal = fd_normal(caps, 0, n, p, radius, _A, _B)
                base = ti.math.vec3(caps[hit, 6], caps[hit, 7], caps[hit, 8])
                rgba = shade(normal, ray, p, base, caps[hit, 9], znear, depth_near, depth_far)
            for c in ti.static(range(4)):
                img[y, x, c] = ti.cast(ti.math.clamp(rgba[c], 0.0, 1.0) * 255.0, ti.u8)

    return render


class OracleRenderer:
    """Reference sphere tracer for one frame at a time (slow; tests and benchmarks only).

    Args:
        size: (H, W) image size in pixels.
        arch: taichi arch, see :func:`taichi_runtime.init_taichi`.
        radius_mm: capsule radius, millimetres.
    """

    def __init__(self, size, *, arch: str = "auto", radius_mm: float = CAPSULE_RADIUS_MM):
        self.height, self.width = (int(v) for v in size)
        self.arch = init_taichi(arch)
        self.radius_mm = float(radius_mm)
        key = (self.arch, generation())
        if key not in _KERNEL:
            _KERNEL[key] = _build_kernel()
        self._kernel = _KERNEL[key]

    def render(self, scene: CapsuleScene, depth: DepthRange, K) -> np.ndarray:
        """Render one frame.

        Args:
            scene: the frame's capsules (camera frame, mm) in draw order.
            depth: depth constants of the whole call (sequence).
            K: (3, 3) intrinsics in pixels (skew ignored, as in the reference).

        Returns:
            (H, W, 4) uint8 RGBA; hits have alpha 204, the background is (0, 0, 0, 0).
        """
        caps = np.zeros((max(len(scene), 1), 10), np.float32)
        if len(scene):
            caps[:, 0:3] = scene.starts
            caps[:, 3:6] = scene.ends
            caps[:, 6:10] = scene.colors
        img = np.zeros((self.height, self.width, 4), np.uint8)
        K = np.asarray(K, dtype=np.float64)
        self._kernel(img, caps, len(scene), K[0, 0], K[1, 1], K[0, 2], K[1, 2], self.radius_mm,
                     depth.znear, depth.zfar, depth.depth_near, depth.depth_far)
        return img
