"""Small clips written with PyAV for the video-input and pipeline tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# container extension -> (codec, pixel format)
CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mov": ("libx264", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
    ".avi": ("mjpeg", "yuvj420p"),
    ".mkv": ("ffv1", "yuv420p"),
    ".ts": ("libx264", "yuv420p"),
}


def pattern_frame(index: int, size=(96, 160)) -> np.ndarray:
    """(H, W, 3) uint8 RGB: smooth colour gradients plus a bright block that moves with index."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    frame = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                      np.full_like(x, 96)], axis=-1).astype(np.uint8)
    side = max(min(height, width) // 4, 2)
    left = (index * 3) % max(width - side, 1)
    frame[height // 3:height // 3 + side, left:left + side] = (255, 255, 255)
    return frame


def noise_frame(index: int, size=(96, 160)) -> np.ndarray:
    """(H, W, 3) uint8 RGB noise (large when encoded; for truncation tests)."""
    return np.random.default_rng(index).integers(0, 256, (*size, 3), dtype=np.uint8)


def write_clip(path, *, frames: int = 12, size=(96, 160), fps: int = 16, make=pattern_frame,
               options=None, rotation=None, preset: str = "ultrafast",
               sample_aspect=None) -> Path:
    """Encode ``frames`` frames of ``make(i, size)`` into ``path`` (codec from the extension);
    ``sample_aspect`` (a Fraction, width/height of a stored pixel) makes it anamorphic."""
    import av

    path = Path(path)
    codec, pix_fmt = CODECS[path.suffix.lower()]
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size[1], size[0]
        stream.pix_fmt = pix_fmt
        if sample_aspect is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect
        if codec == "libx264":
            stream.options = {"preset": preset, "crf": "18"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(make(i, size), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_image(path, rgb: np.ndarray) -> Path:
    """Write an RGB image with OpenCV (format from the extension)."""
    import cv2

    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def trim_losslessly(source, path, first: int) -> Path:
    """Remux ``source`` (constant rate mp4) into ``path`` so that it presents frames from index
    ``first`` on, without re-encoding: every packet is kept (the frames before ``first`` are
    needed to decode from the keyframe) and shifted to negative times, which the mp4 muxer turns
    into an edit list, as ``ffmpeg -ss T -c copy`` does."""
    import av

    path = Path(path)
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        stream = src.streams.video[0]
        copy = out.add_stream_from_template(stream)
        shift = int(round(first / (stream.average_rate * stream.time_base)))
        for packet in src.demux(stream):
            if packet.dts is None:  # the demuxer's final empty packet
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = copy
            out.mux(packet)
    return path


def write_animation(path, frames, delays_ms) -> Path:
    """Write an animated GIF, WebP or PNG (APNG) with Pillow (format from the extension);
    ``frames``: (H, W, 3) uint8 RGB arrays, ``delays_ms``: per-frame delays."""
    from PIL import Image

    path = Path(path)
    images = [Image.fromarray(frame) for frame in frames]
    extra = {"lossless": True} if path.suffix.lower() == ".webp" else {}
    images[0].save(path, save_all=True, append_images=images[1:], duration=list(delays_ms),
                   loop=0, **extra)
    return path


def cut_clip(source, target, frames: int, repeat: int = 1) -> Path:
    """The first ``frames`` frames of ``source``, ``repeat`` times over, re-encoded to ``target``
    (H.264, same rate and size)."""
    import av

    with av.open(str(source)) as src:
        stream_in = src.streams.video[0]
        rate, width, height = stream_in.average_rate, stream_in.width, stream_in.height
        pictures = [f.to_ndarray(format="rgb24")
                    for _, f in zip(range(frames), src.decode(stream_in))]
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for picture in pictures * repeat:
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(target)


def decoded_frames(path) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of a video."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
