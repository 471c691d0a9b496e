"""Taichi functions of the reference's sphere tracer (docs/pipeline.md §6.3-6.4), shared by the
oracle and by the production renderer's fallback for grazing rays.

Capsule rows live in a 2D float32 array; the caller says (as compile-time column indices) where
each row keeps its segment start ``a`` and end ``b``. Everything is float32, evaluated in the
reference's order, so results agree with it to the last rounding where the compiler allows.
"""

from scail_protocol.capsules import (AMBIENT, DIFFUSE, MARCH_HIT_MM, MARCH_MAX_STEPS,
                                     MARCH_MIN_STEP_MM, MARCH_NORMAL_STEP_MM, SHININESS, SPECULAR)

NO_CAPSULE_SDF_MM = 1e6         # docs/pipeline.md §6.3: an empty scene's SDF (everything misses)
DEGENERATE_SEGMENT_MM2 = 1e-16  # docs/pipeline.md §6.3: segments under 1e-8 mm act as spheres
_FUNCS = {}


def sdf_funcs() -> dict:
    """Taichi funcs ``scene_sdf``, ``march``, ``fd_normal`` and ``shade`` (built once)."""
    if not _FUNCS:
        _FUNCS.update(_build())
    return dict(_FUNCS)


def _build() -> dict:
    import taichi as ti

    vec3 = ti.math.vec3

    @ti.func
    def scene_sdf(caps: ti.template(), first, count, p, radius, a_col: ti.template(),
                  b_col: ti.template()):
        """(distance mm, row) of the capsule nearest to p among rows [first, first+count)."""
        best = ti.cast(NO_CAPSULE_SDF_MM, ti.f32)
        best_i = -1
        for i in range(first, first + count):
            a = vec3(caps[i, a_col], caps[i, a_col + 1], caps[i, a_col + 2])
            ba = vec3(caps[i, b_col], caps[i, b_col + 1], caps[i, b_col + 2]) - a
            pa = p - a
            baba = ba.dot(ba)
            h = 0.0
            if baba > DEGENERATE_SEGMENT_MM2:
                h = ti.math.clamp(pa.dot(ba) / baba, 0.0, 1.0)
            d = (pa - ba * h).norm() - radius
            if d < best:  # strict: the earlier capsule wins exact ties
                best = d
                best_i = i
        return best, best_i

    @ti.func
    def march(caps: ti.template(), first, count, ray, radius, znear, zfar,
              a_col: ti.template(), b_col: ti.template()):
        """(row hit or -1, ray parameter t mm) of the reference's 300-step sphere trace."""
        t = znear
        hit = -1
        for _ in range(MARCH_MAX_STEPS):
            d, row = scene_sdf(caps, first, count, t * ray, radius, a_col, b_col)
            if d < MARCH_HIT_MM:
                hit = row
                break
            if t > zfar:
                break
            t += ti.max(d, MARCH_MIN_STEP_MM)
        return hit, t

    @ti.func
    def fd_normal(caps: ti.template(), first, count, p, radius, a_col: ti.template(),
                  b_col: ti.template()):
        """Unit normal at p by central differences of the scene SDF (step 1e-3 mm)."""
        h = MARCH_NORMAL_STEP_MM
        nx = scene_sdf(caps, first, count, p + vec3(h, 0, 0), radius, a_col, b_col)[0] \
            - scene_sdf(caps, first, count, p - vec3(h, 0, 0), radius, a_col, b_col)[0]
        ny = scene_sdf(caps, first, count, p + vec3(0, h, 0), radius, a_col, b_col)[0] \
            - scene_sdf(caps, first, count, p - vec3(0, h, 0), radius, a_col, b_col)[0]
        nz = scene_sdf(caps, first, count, p + vec3(0, 0, h), radius, a_col, b_col)[0] \
            - scene_sdf(caps, first, count, p - vec3(0, 0, h), radius, a_col, b_col)[0]
        return vec3(nx, ny, nz).normalized()

    @ti.func
    def shade(normal, ray, p, base, alpha, znear, depth_near, depth_far):
        """RGBA in [0, 1] of a hit (docs/pipeline.md §6.4): head-light, Blinn-Phong, depth
        dimming."""
        light = vec3(0.0, 0.0, -1.0)  # lit from the camera
        diffuse = ti.max(normal.dot(light), 0.0)
        half = (-ray + light).normalized()
        spec = ti.pow(ti.max(normal.dot(half), 0.0), SHININESS)
        k = ti.math.clamp(1.0 - (p.z - depth_near) / (depth_far - znear), 0.0, 1.0)
        rgb = base * (AMBIENT + DIFFUSE * diffuse) * k + SPECULAR * spec * k
        return ti.math.vec4(rgb, alpha)

    return {"scene_sdf": scene_sdf, "march": march, "fd_normal": fd_normal, "shade": shade}
