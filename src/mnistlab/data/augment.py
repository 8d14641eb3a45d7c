"""Random shifts, rotations and scalings of a whole batch at once: one affine grid, one grid_sample, on the device."""

import math

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, max_shift: float, max_rotate: float, max_scale: float = 0.0) -> torch.Tensor:
    """images (N, C, H, W); each image shifted by up to max_shift pixels, rotated up to max_rotate degrees
    and scaled by a factor in [1 - max_scale, 1 + max_scale]."""
    n, _, height, width = images.shape
    angle = (torch.rand(n, device=images.device) * 2 - 1) * math.radians(max_rotate)
    shift = (torch.rand(n, 2, device=images.device) * 2 - 1) * max_shift
    zoom = 1 + (torch.rand(n, device=images.device) * 2 - 1) * max_scale
    cos, sin = angle.cos() / zoom, angle.sin() / zoom  # the grid maps output to input: divide to enlarge
    theta = torch.stack(
        [
            torch.stack([cos, -sin, shift[:, 0] * 2 / width], dim=1),  # grid units: 2 / size per pixel
            torch.stack([sin, cos, shift[:, 1] * 2 / height], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
