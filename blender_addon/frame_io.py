"""The frame files between Cycles, numpy and Blender's FFmpeg, numpy only (no bpy).

* :func:`read_exr` reads the uncompressed, single-part scanline OpenEXR files that the
  conditioning render writes (32-bit float RGBA, ``exr_codec = 'NONE'``) straight into numpy,
  several times faster than loading them as Blender images; anything else raises
  :class:`UnsupportedExr` so the caller can fall back to Blender's reader.
* :func:`write_tga` writes an uncompressed 24-bit Targa, which Blender's sequencer reads;
  no compression means it costs little more than the copy.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

EXR_MAGIC = 20000630  # OpenEXR file identifier
_SINGLE_PART_SCANLINE_FLAGS = 0x200 | 0x800 | 0x1000  # tiled, deep, multi-part: unsupported
_PIXEL_TYPES = {1: np.dtype("<f2"), 2: np.dtype("<f4")}  # HALF, FLOAT (UINT is not used)


class UnsupportedExr(ValueError):
    """The EXR file uses a feature this reader does not handle (compression, tiles, parts)."""


def read_exr(path) -> np.ndarray:
    """Read an uncompressed scanline EXR as (H, W, 4) float32 RGBA, top row first.

    Args:
        path: the ``.exr`` file; its channels must include R, G, B and A (any layer prefix).

    Returns:
        (H, W, 4) float32, scene-linear values as stored.

    Raises:
        UnsupportedExr: compressed, tiled, deep or multi-part files, or missing channels.
        OSError: the file cannot be read.
    """
    data = Path(path).read_bytes()
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != EXR_MAGIC or version & _SINGLE_PART_SCANLINE_FLAGS:
        raise UnsupportedExr(f"{path}: not a single-part scanline EXR")
    header, offset = _read_header(data, 8)
    if header.get("compression", b"\x00")[0] != 0:
        raise UnsupportedExr(f"{path}: compressed EXR (compression {header['compression'][0]})")
    x_min, y_min, x_max, y_max = struct.unpack("<iiii", header["dataWindow"])
    width, height = x_max - x_min + 1, y_max - y_min + 1
    channels = _channels(header["channels"])
    line_bytes = sum(width * dtype.itemsize for _, dtype in channels)
    offsets = np.frombuffer(data, dtype="<u8", count=height, offset=offset)
    first = int(offsets[0])
    if np.any(np.diff(offsets.astype(np.int64)) != 8 + line_bytes) or \
            first + height * (8 + line_bytes) > len(data):
        raise UnsupportedExr(f"{path}: scanlines are not stored one after another")
    lines = np.frombuffer(data, dtype=np.uint8, count=height * (8 + line_bytes), offset=first)
    lines = lines.reshape(height, 8 + line_bytes)[:, 8:]
    out = np.empty((height, width, 4), dtype=np.float32)
    start = 0
    wanted = {"R": 0, "G": 1, "B": 2, "A": 3}
    found = set()
    for name, dtype in channels:
        size = width * dtype.itemsize
        key = name.rsplit(".", 1)[-1]
        if key in wanted:
            out[..., wanted[key]] = lines[:, start:start + size].copy().view(dtype)
            found.add(key)
        start += size
    if found != set(wanted):
        raise UnsupportedExr(f"{path}: channels {[n for n, _ in channels]} lack R, G, B or A")
    line_order = header.get("lineOrder", b"\x00")[0]
    return out[::-1] if line_order == 1 else out  # 1: DECREASING_Y


def _read_header(data: bytes, offset: int) -> tuple:
    """({attribute name: raw value bytes}, offset after the header)."""
    header = {}
    while data[offset] != 0:
        name_end = data.index(b"\x00", offset)
        type_end = data.index(b"\x00", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        value_start = type_end + 5
        header[data[offset:name_end].decode("latin-1")] = data[value_start:value_start + size]
        offset = value_start + size
    return header, offset + 1


def _channels(chlist: bytes) -> list:
    """[(name, dtype)] of an EXR channel list, in file order."""
    channels, offset = [], 0
    while chlist[offset] != 0:
        name_end = chlist.index(b"\x00", offset)
        pixel_type, _, x_sampling, y_sampling = struct.unpack_from("<iB3xii", chlist, name_end + 1)
        if pixel_type not in _PIXEL_TYPES or (x_sampling, y_sampling) != (1, 1):
            raise UnsupportedExr(f"EXR channel type {pixel_type} or subsampling is not supported")
        channels.append((chlist[offset:name_end].decode("latin-1"), _PIXEL_TYPES[pixel_type]))
        offset = name_end + 1 + 16
    return channels


def write_tga(rgb: np.ndarray, path) -> None:
    """Write (H, W, 3) uint8 RGB as an uncompressed 24-bit Targa, top row first."""
    height, width = rgb.shape[:2]
    header = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, width, height, 24,
                         0x20)  # type 2: uncompressed true colour; 0x20: rows top to bottom
    with open(path, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(rgb[..., ::-1]).tobytes())  # stored as BGR
