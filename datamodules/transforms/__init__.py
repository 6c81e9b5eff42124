"""Video clip transforms: uint8 frames ``(T, H, W, 3)`` to normalised clips ``(C, T, H, W)``."""

from datamodules.transforms.video import IMAGENET_MEAN, IMAGENET_STD, ClipTransform, centre_square_box, random_crop_box

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ClipTransform", "centre_square_box", "random_crop_box"]
