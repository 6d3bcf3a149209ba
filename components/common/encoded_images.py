"""Small valid encoded images (JPEG, PNG, BMP, GIF) for inputs that a model decodes: samples and warmup.

TensorFlow encodes JPEG and PNG; it has no BMP or GIF encoder, so those two are written here (an
uncompressed 24-bit BMP; a GIF whose LZW stream resets before its code width grows).
"""

from __future__ import annotations

import struct

import numpy as np

# A few sizes, so models that resize are exercised with more than one shape.
IMAGE_SIZES = ((32, 32), (48, 40), (40, 56))


def sample_pixels(index: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image that differs per index: a gradient in a per-image colour plus noise."""
    height, width = IMAGE_SIZES[index % len(IMAGE_SIZES)]
    rng = np.random.default_rng(seed * 1000 + index)
    rows = np.linspace(0, 1, height)[:, None, None]
    cols = np.linspace(0, 1, width)[None, :, None]
    colour = rng.uniform(0.2, 1.0, size=3)[None, None, :]
    image = 255 * (0.5 * rows + 0.5 * cols) * colour + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _bmp(pixels: np.ndarray) -> bytes:
    height, width, _ = pixels.shape
    row_size = (width * 3 + 3) // 4 * 4
    rows = b"".join(
        pixels[y, :, ::-1].tobytes().ljust(row_size, b"\0") for y in range(height - 1, -1, -1)
    )  # bottom-up rows of BGR, each padded to 4 bytes
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(header) + len(rows), 0, 0, 54) + header + rows


def _gif(pixels: np.ndarray) -> bytes:
    height, width, _ = pixels.shape
    # 3-3-2 bits of red, green, blue as the 256-colour palette.
    palette = bytes(
        v for i in range(256) for v in ((i >> 5) * 255 // 7, ((i >> 2) & 7) * 255 // 7, (i & 3) * 255 // 3)
    )
    indices = (pixels[..., 0] >> 5 << 5 | pixels[..., 1] >> 5 << 2 | pixels[..., 2] >> 6).reshape(-1)
    clear, end = 256, 257
    codes = []
    for start in range(0, len(indices), 254):  # a clear code before the table reaches 512 entries
        codes.append(clear)
        codes.extend(int(v) for v in indices[start : start + 254])
    codes.append(end)
    bits = 0
    for n, code in enumerate(codes):  # 9-bit codes, least significant bit first
        bits |= code << (9 * n)
    packed = bits.to_bytes((9 * len(codes) + 7) // 8, "little")
    blocks = b"".join(
        bytes([len(packed[i : i + 255])]) + packed[i : i + 255] for i in range(0, len(packed), 255)
    )
    screen = struct.pack("<6sHHBBB", b"GIF89a", width, height, 0xF7, 0, 0)
    image = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return screen + palette + image + bytes([8]) + blocks + b"\0;"


def encode_image(pixels: np.ndarray, image_format: str) -> bytes:
    """`pixels` (height, width, 3 uint8) encoded as `image_format`: jpeg, png, bmp or gif."""
    if image_format == "bmp":
        return _bmp(pixels)
    if image_format == "gif":
        return _gif(pixels)
    from kfp_tfserving.components.common.tfenv import import_tensorflow

    tf = import_tensorflow()
    encode = tf.io.encode_png if image_format == "png" else tf.io.encode_jpeg
    return bytes(encode(pixels).numpy())


def encoded_images(count: int, image_format: str, seed: int = 0) -> list[bytes]:
    return [encode_image(sample_pixels(i, seed), image_format) for i in range(count)]
