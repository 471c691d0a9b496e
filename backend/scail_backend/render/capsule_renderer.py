"""The production capsule renderer: analytic ray-capsule intersection in one taichi kernel.

Same picture as the reference ray marcher (docs/pipeline.md §6.2-6.4; :mod:`oracle`), far faster:

* each pixel's ray (through integer pixel coordinates, no +0.5) is intersected analytically with
  the infinite cylinder around each capsule axis, then with the end sphere on the side where it
  entered; the nearest hit wins, ties go to the earlier capsule (the reference's strict "<");
* a pixel is only tested against capsules whose screen rectangle contains it
  (:mod:`capsule_packing`); each image row is one parallel task, and its pixels outside the
  union of the frame's rectangles are plain zero stores;
* several frames go through one kernel launch; the kernel takes numpy arrays (zero-copy on the
  CPU) and is compiled once per process for any image size;
* shading is the reference's: head-light diffuse, Blinn-Phong highlight (exponent 32), depth
  attenuation k = clip(1 - (z - depth_near) / (depth_far - znear), 0, 1), truncation to uint8;
  the exact normal is tilted like the reference's float32 finite differences tilt theirs
  (``fd_step_ratio``), which brings the mean colour difference from ~0.8 to ~0.1 levels;
* rays that graze a limb pointing at the camera are re-traced with the reference's own 300-step
  sphere tracer (:mod:`sdf_funcs`), because the reference runs out of steps there and leaves
  those rim pixels empty; this touches a handful of pixels per frame at most.

Rays start at ``znear`` like the reference's march: geometry behind it is invisible, and a ray
that starts inside a capsule hits it at ``znear`` (normal = away from the axis, like the SDF's
gradient). Hits beyond ``zfar`` are dropped, as the reference's march gives up there.
"""

import logging
import sys

import numpy as np

from scail_protocol.capsules import CAPSULE_RADIUS_MM, MARCH_NORMAL_STEP_MM, DepthRange
from scail_protocol.errors import RenderError

from .capsule_packing import (COL_ALPHA, COL_AXIS, COL_END, COL_LENGTH, COL_NEAR, COL_RGB,
                              COL_START, GEOMETRY_COLUMNS, pack_batch)
from .sdf_funcs import sdf_funcs
from .taichi_runtime import generation, init_taichi

log = logging.getLogger(__name__)

DEFAULT_BATCH_FRAMES = 8     # frames per kernel launch
PARALLEL_EPS = 1e-7          # 1 - cos² below this: ray (nearly) parallel to the capsule axis
GRAZING_AXIAL_COS = 0.8      # |ray·axis| above this: the limb points (roughly) at the camera
GRAZING_HIT_COS = 0.5        # |ray·normal| below this: the ray grazes the surface
_NO_HIT = 3.0e38
_F32_MANTISSA_BITS = 23
_KERNELS = {}


def _build_kernel(emulate_fd_normals: bool, march_grazing: bool):
    import taichi as ti

    vec3 = ti.math.vec3
    funcs = sdf_funcs()
    march, fd_normal, shade = funcs["march"], funcs["fd_normal"], funcs["shade"]

    @ti.func
    def column3(geo: ti.template(), i, col: ti.template()):
        return vec3(geo[i, col], geo[i, col + 1], geo[i, col + 2])

    @ti.func
    def sphere_entry(center, ray, r2):
        """Ray parameter where the ray (from the origin) enters a sphere, or _NO_HIT."""
        along = center.dot(ray)
        perp = center - along * ray  # well-conditioned: no difference of two large squares
        h = r2 - perp.dot(perp)
        t = _NO_HIT
        if h >= 0.0:
            t = along - ti.sqrt(h)
        return t

    @ti.func
    def capsule_entry(geo: ti.template(), i, ray, radius, znear):
        """Ray parameter of the first hit of capsule row i at or after znear, or _NO_HIT."""
        a = column3(geo, i, COL_START)
        u = column3(geo, i, COL_AXIS)
        length = geo[i, COL_LENGTH]
        r2 = radius * radius
        t = _NO_HIT
        origin = znear * ray
        s0 = ti.math.clamp((origin - a).dot(u), 0.0, length)
        q0 = origin - (a + s0 * u)
        if geo[i, COL_NEAR] > 0.5 and q0.dot(q0) < r2:
            t = znear  # the ray starts inside this capsule
        else:
            b = ray.dot(u)
            denom = 1.0 - b * b
            if length > 0.0 and denom > PARALLEL_EPS:
                # Distance between the ray line and the axis line: |a·(ray × u)| / |ray × u|.
                dist = ti.abs(a.dot(ray.cross(u))) / ti.sqrt(denom)
                if dist < radius:
                    au = a.dot(u)
                    t_in = (a.dot(ray) - au * b) / denom - ti.sqrt((r2 - dist * dist) / denom)
                    s = t_in * b - au  # axial coordinate where the ray enters the cylinder
                    if s < 0.0:
                        t = sphere_entry(a, ray, r2)
                    elif s > length:
                        t = sphere_entry(column3(geo, i, COL_END), ray, r2)
                    else:
                        t = t_in
            else:
                t = ti.min(sphere_entry(a, ray, r2),
                           sphere_entry(column3(geo, i, COL_END), ray, r2))
            if t < znear:
                t = _NO_HIT  # entered behind the ray origin and origin outside: all behind
        return t

    @ti.func
    def fd_step_ratio(v):
        """Effective/nominal step of a float32 central difference of step h at coordinate v.

        v ± h rounds to v's float32 grid (spacing ulp), so the reference's finite-difference
        normal really samples ±round(h/ulp)·ulp along each axis: for |v| >= 512 mm that is
        2^-10 mm instead of 1e-3 mm. Scaling the analytic normal per axis by this ratio (then
        renormalising) reproduces the reference's systematic tilt of its normals.
        """
        exponent = ti.cast((ti.bit_cast(ti.abs(v), ti.u32) >> _F32_MANTISSA_BITS) & 0xFF, ti.i32)
        ratio = 1.0  # |v| < 2^-103: the grid is far finer than h
        if exponent > _F32_MANTISSA_BITS:
            ulp = ti.bit_cast(ti.cast(exponent - _F32_MANTISSA_BITS, ti.u32) << _F32_MANTISSA_BITS,
                              ti.f32)  # 2^(e - 23): spacing of the float32 grid at v
            ratio = ti.round(MARCH_NORMAL_STEP_MM / ulp) * ulp / MARCH_NORMAL_STEP_MM
        return ratio

    @ti.func
    def analytic_normal(geo: ti.template(), i, p):
        a = column3(geo, i, COL_START)
        u = column3(geo, i, COL_AXIS)
        s = ti.math.clamp((p - a).dot(u), 0.0, geo[i, COL_LENGTH])
        normal = (p - (a + s * u)).normalized()
        if ti.static(emulate_fd_normals):
            normal = (normal * vec3(fd_step_ratio(p.x), fd_step_ratio(p.y),
                                    fd_step_ratio(p.z))).normalized()
        return normal

    @ti.func
    def pixel(f, x, y, frames: ti.template(), geo: ti.template(), rect: ti.template(), fx, fy,
              cx, cy, radius, znear, zfar, depth_near, depth_far):
        """Packed RGBA (little-endian u32) of pixel (x, y) of frame f."""
        packed = ti.u32(0)
        ray = vec3((ti.cast(x, ti.f32) - cx) / fx, (ti.cast(y, ti.f32) - cy) / fy,
                   1.0).normalized()
        best_t = _NO_HIT
        best = -1
        first, count = frames[f, 0], frames[f, 1]
        for i in range(first, first + count):
            if rect[i, 0] <= x <= rect[i, 2] and rect[i, 1] <= y <= rect[i, 3]:
                t = capsule_entry(geo, i, ray, radius, znear)
                if t < best_t:
                    best_t = t
                    best = i
        if best >= 0 and best_t <= zfar:
            p = best_t * ray
            normal = analytic_normal(geo, best, p)
            if ti.static(march_grazing):
                # Along a limb that points at the camera a grazing ray makes the reference's
                # sphere tracer crawl and give up after 300 steps (a miss the analytic test
                # would not see): trace those few rays its way.
                axial = ti.abs(ray.dot(column3(geo, best, COL_AXIS)))
                if axial > GRAZING_AXIAL_COS and -normal.dot(ray) < GRAZING_HIT_COS:
                    best, t = march(geo, first, count, ray, radius, znear, zfar, COL_START,
                                    COL_END)
                    if best >= 0:
                        p = t * ray
                        normal = fd_normal(geo, first, count, p, radius, COL_START, COL_END)
            if best >= 0:
                rgba = shade(normal, ray, p, column3(geo, best, COL_RGB), geo[best, COL_ALPHA],
                             znear, depth_near, depth_far)
                for c in ti.static(range(4)):
                    level = ti.cast(ti.math.clamp(rgba[c], 0.0, 1.0) * 255.0, ti.u32)
                    packed |= level << (8 * c)
        return packed

    @ti.kernel
    def render(img: ti.types.ndarray(dtype=ti.u32, ndim=3),
               frames: ti.types.ndarray(dtype=ti.i32, ndim=2),
               geo: ti.types.ndarray(dtype=ti.f32, ndim=2),
               rect: ti.types.ndarray(dtype=ti.i32, ndim=2),
               num_frames: ti.i32, fx: ti.f32, fy: ti.f32, cx: ti.f32, cy: ti.f32,
               radius: ti.f32, znear: ti.f32, zfar: ti.f32, depth_near: ti.f32,
               depth_far: ti.f32):
        # One parallel task per image row; the row's pixels outside the frame's union of
        # capsule rectangles are plain zero stores.
        for f, y in ti.ndrange(num_frames, img.shape[1]):
            width = img.shape[2]
            x0, x1 = frames[f, 2], frames[f, 4]
            if y < frames[f, 3] or y > frames[f, 5]:
                x0, x1 = width, width - 1
            for x in range(0, x0):
                img[f, y, x] = ti.u32(0)
            for x in range(x0, x1 + 1):
                img[f, y, x] = pixel(f, x, y, frames, geo, rect, fx, fy, cx, cy, radius, znear,
                                     zfar, depth_near, depth_far)
            for x in range(x1 + 1, width):
                img[f, y, x] = ti.u32(0)

    return render


class CapsuleRenderer:
    """Renders batches of capsule scenes to RGBA frames.

    Create one per image size and reuse it. No taichi fields are allocated per call: the kernel
    (compiled once per process, for every size) reads small per-batch numpy arrays of capsule
    rows and writes straight into the output array (zero-copy on the CPU; on CUDA taichi copies
    them to and from the device around each launch).

    Args:
        size: (H, W) image size in pixels.
        arch: taichi arch ("auto", "cpu", "cuda"); see :func:`taichi_runtime.init_taichi`.
        batch_frames: frames per kernel launch.
        radius_mm: capsule radius, millimetres.
        reference_normals: tilt the analytic normals the way the reference's float32
            central differences do (see ``fd_step_ratio``); False gives exact normals.
        reference_silhouettes: trace rays that graze a limb pointing at the camera with the
            reference's 300-step sphere tracer, which misses some of them; False keeps the
            exact analytic silhouette there.
    """

    def __init__(self, size, *, arch: str = "auto", batch_frames: int = DEFAULT_BATCH_FRAMES,
                 radius_mm: float = CAPSULE_RADIUS_MM, reference_normals: bool = True,
                 reference_silhouettes: bool = True):
        if sys.byteorder != "little":
            raise RenderError("the capsule renderer packs RGBA little-endian; this CPU is not")
        self.height, self.width = (int(v) for v in size)
        if self.height <= 0 or self.width <= 0:
            raise RenderError(f"image size must be positive, got {self.height}x{self.width}")
        self.batch_frames = max(int(batch_frames), 1)
        self.radius_mm = float(radius_mm)
        self.arch = init_taichi(arch)
        flags = (bool(reference_normals), bool(reference_silhouettes))
        key = (self.arch, generation()) + flags
        if key not in _KERNELS:
            _KERNELS[key] = _build_kernel(*flags)
        self._kernel = _KERNELS[key]

    @property
    def size(self) -> tuple:
        return self.height, self.width

    def render(self, scenes, depth: DepthRange, K, out: np.ndarray = None) -> np.ndarray:
        """Render frames.

        Args:
            scenes: sequence of B :class:`scail_protocol.capsules.CapsuleScene` (camera frame,
                mm), one per frame; empty scenes give transparent black frames.
            depth: depth constants of the whole sequence (:class:`DepthRange`).
            K: (3, 3) intrinsics in pixels (skew ignored, as in the reference).
            out: optional (B, H, W, 4) uint8 C-contiguous array to render into.

        Returns:
            (B, H, W, 4) uint8 RGBA (``out`` when given): hits have alpha 204, the background
            is (0, 0, 0, 0).
        """
        scenes = list(scenes)
        shape = (len(scenes), self.height, self.width, 4)
        if out is None:
            out = np.empty(shape, np.uint8)
        elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {shape} uint8 array")
        packed_out = out.view(np.uint32).reshape(shape[:3])
        K = np.asarray(K, dtype=np.float64)
        for start in range(0, len(scenes), self.batch_frames):
            chunk = scenes[start:start + self.batch_frames]
            batch = pack_batch(chunk, self.radius_mm, K, self.size, depth.znear)
            geometry, bounds = batch.geometry, batch.bounds
            if len(geometry) == 0:  # the kernel wants at least one row
                geometry = np.zeros((1, GEOMETRY_COLUMNS), np.float32)
                bounds = np.zeros((1, 4), np.int32)
            self._kernel(packed_out[start:start + len(chunk)], batch.frames, geometry, bounds,
                         len(chunk), K[0, 0], K[1, 1], K[0, 2], K[1, 2], self.radius_mm,
                         depth.znear, depth.zfar, depth.depth_near, depth.depth_far)
        return out
