"""Camera-like augmentation for real photos: random resized crop, flip, small rotation, colour jitter, blur.

A kiosk camera sees a garment at varying distance, off-centre, slightly tilted, under shop lighting
and sometimes out of focus. Training images are stored a little larger than the model's input
(`source_size`) so that the crop can move and zoom without padding; validation images are the
daemon's own centre crop at the model's size.
"""

from __future__ import annotations

import math

import tensorflow as tf

# Margin of the stored training square over the model's input: room for the crop to move.
SOURCE_MARGIN = 1.15
CROP_SCALE = (0.35, 1.0)  # share of the stored square's area a crop keeps
CROP_ASPECT = (3 / 4, 4 / 3)
MAX_ROTATION_DEG = 12.0
BRIGHTNESS = 0.25  # +- in units of full scale
CONTRAST = (0.7, 1.3)
SATURATION = (0.7, 1.3)
HUE = 0.03
BLUR_PROBABILITY = 0.25
BLUR_SIGMA = (0.4, 1.6)


def source_size(resolution: int) -> int:
    """The side of the stored training square for a model input of RESOLUTION pixels."""
    return round(resolution * SOURCE_MARGIN)


def random_resized_crop(image: tf.Tensor, resolution: int) -> tf.Tensor:
    """A random crop of 35-100% of the area with aspect 3:4-4:3, resized to the model's input."""
    side = tf.cast(tf.shape(image)[0], tf.float32)
    area = tf.random.uniform([], *CROP_SCALE) * side * side
    log_aspect = tf.random.uniform([], math.log(CROP_ASPECT[0]), math.log(CROP_ASPECT[1]))
    aspect = tf.exp(log_aspect)
    h = tf.minimum(side, tf.round(tf.sqrt(area / aspect)))
    w = tf.minimum(side, tf.round(tf.sqrt(area * aspect)))
    top = tf.random.uniform([], 0.0, 1.0) * (side - h)
    left = tf.random.uniform([], 0.0, 1.0) * (side - w)
    box = tf.stack([top / side, left / side, (top + h) / side, (left + w) / side])[None]
    crops = tf.image.crop_and_resize(image[None], box, [0], [resolution, resolution], method="bilinear")
    return crops[0]


def rotate(image: tf.Tensor, max_degrees: float) -> tf.Tensor:
    """Rotate by a random angle of up to MAX_DEGREES about the centre, reflecting at the borders."""
    angle = tf.random.uniform([], -max_degrees, max_degrees) * (math.pi / 180.0)
    size = tf.cast(tf.shape(image)[0], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    centre = (size - 1.0) / 2.0
    # The output-to-input mapping of a rotation about the centre, as ImageProjectiveTransformV3 wants it.
    transform = tf.stack(
        [cos, -sin, centre - cos * centre + sin * centre, sin, cos, centre - sin * centre - cos * centre, 0.0, 0.0]
    )
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform[None],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    return rotated[0]


def gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """A separable 5x5 Gaussian blur of an (H, W, C) float image."""
    x = tf.range(-2.0, 3.0)
    kernel_1d = tf.exp(-(x**2) / (2.0 * sigma**2))
    kernel_1d /= tf.reduce_sum(kernel_1d)
    channels = image.shape[-1]
    horizontal = tf.tile(tf.reshape(kernel_1d, [1, 5, 1, 1]), [1, 1, channels, 1])
    vertical = tf.tile(tf.reshape(kernel_1d, [5, 1, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(image[None], horizontal, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(out, vertical, [1, 1, 1, 1], "SAME")[0]


def colour_jitter(image: tf.Tensor) -> tf.Tensor:
    """Brightness, contrast, saturation and hue changes of a [0, 1] RGB image."""
    image = tf.image.random_brightness(image, BRIGHTNESS)
    image = tf.image.random_contrast(image, *CONTRAST)
    image = tf.image.random_saturation(image, *SATURATION)
    image = tf.image.random_hue(image, HUE)
    return tf.clip_by_value(image, 0.0, 1.0)


def augment(image_uint8: tf.Tensor, resolution: int) -> tf.Tensor:
    """One camera-like view of a stored RGB training square, as uint8 pixels of the model's size."""
    image = tf.cast(image_uint8, tf.float32) / 255.0
    image = rotate(image, MAX_ROTATION_DEG)
    image = random_resized_crop(image, resolution)
    image = tf.image.random_flip_left_right(image)
    image = colour_jitter(image)
    sigma = tf.random.uniform([], *BLUR_SIGMA)
    blurred = gaussian_blur(image, sigma)
    image = tf.where(tf.random.uniform([]) < BLUR_PROBABILITY, blurred, image)
    return tf.cast(tf.round(image * 255.0), tf.uint8)
