"""The conditioning render: 3D capsules (taichi) plus the 2D overlay, streamed to video.

Modules: ``taichi_runtime`` (one ``ti.init`` per process), ``capsule_renderer`` (the production
renderer) with ``capsule_packing`` (its numpy-side inputs and screen bounds), ``oracle`` (the
reference ray marcher, for tests and benchmarks) with ``sdf_funcs`` (the sphere-tracing taichi
functions both share), ``pipeline`` (sequence -> RGBA frames -> mp4/PNG) and ``samples``
(procedural test poses). Nothing heavy is imported here; taichi loads when a renderer is made.
"""
