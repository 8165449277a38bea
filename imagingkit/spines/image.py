"""Input checks for spine analysis: arrays or Recordings to a float image and its voxel spacing.

Accepted inputs
---------------
- a 2D ``(Y, X)`` image (e.g. a maximum projection);
- a 3D ``(Z, Y, X)`` z-stack; ``z_step_um`` is required (voxels are anisotropic);
  a stack with a single plane is treated as a 2D image;
- an :class:`imagingkit.io.Recording`: with several time points the mean image of
  each plane is used (streamed); with several planes it is a z-stack.

Rejected with a clear error: RGB(A) colour images (pass one channel), NaN or
infinite pixels (fill or crop them first), more than three dimensions and a
missing pixel size.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from imagingkit.errors import DataError, ParameterError
from imagingkit.io.recording import Recording


@dataclasses.dataclass(frozen=True)
class PreparedImage:
    """A validated image with its physical voxel spacing.

    Attributes
    ----------
    data : ndarray
        float32 ``(Y, X)`` or ``(Z, Y, X)``.
    spacing_um : tuple of float
        Voxel size per axis in micrometres, in array order.
    """

    data: np.ndarray
    spacing_um: tuple[float, ...]

    @property
    def is_3d(self) -> bool:
        return self.data.ndim == 3

    @property
    def pixel_size_um(self) -> tuple[float, float]:
        return self.spacing_um[-2], self.spacing_um[-1]

    @property
    def z_step_um(self) -> float | None:
        return self.spacing_um[0] if self.is_3d else None


def _pixel_size_pair(pixel_size_um) -> tuple[float, float]:
    size = np.atleast_1d(np.asarray(pixel_size_um, dtype=float))
    if size.size == 1:
        size = np.repeat(size, 2)
    if size.size != 2 or not np.all(np.isfinite(size)) or np.any(size <= 0):
        raise ParameterError(
            f"pixel_size_um must be one or two positive numbers (y, x), got {pixel_size_um!r}"
        )
    return float(size[0]), float(size[1])


def _recording_image(recording: Recording, channel: int) -> tuple[np.ndarray, tuple | None, float | None]:
    planes = [recording.mean_image(plane=z, channel=channel) for z in range(recording.n_planes)]
    image = planes[0] if len(planes) == 1 else np.stack(planes)
    return image, recording.pixel_size_um, recording.z_step_um


def prepare_image(
    image: np.ndarray | Recording,
    pixel_size_um: float | tuple[float, float] | None = None,
    z_step_um: float | None = None,
    channel: int = 0,
) -> PreparedImage:
    """Validate an image, stack or Recording and attach its voxel spacing.

    Parameters
    ----------
    image : ndarray or Recording
        ``(Y, X)`` image, ``(Z, Y, X)`` stack or a Recording (see module docstring).
    pixel_size_um : float or (float, float), optional
        Lateral pixel size in micrometres; overrides the Recording's value.
        Required when the input does not carry one.
    z_step_um : float, optional
        Plane spacing of a z-stack in micrometres; required for 3D input.
    channel : int
        Channel of a Recording to use.

    Returns
    -------
    PreparedImage

    Raises
    ------
    ParameterError
        Missing ``pixel_size_um`` or ``z_step_um``, RGB input, wrong number of dimensions.
    DataError
        NaN or infinite pixels.
    """
    if isinstance(image, Recording):
        array, rec_pixel, rec_z = _recording_image(image, channel)
        pixel_size_um = pixel_size_um if pixel_size_um is not None else rec_pixel
        z_step_um = z_step_um if z_step_um is not None else rec_z
    else:
        array = np.asarray(image)
    if array.dtype.kind not in "uif" and array.dtype != bool:
        raise ParameterError(f"image must be numeric, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) > 4:
        raise ParameterError(
            f"image of shape {array.shape} looks like an RGB(A) colour image (Y, X, {array.shape[-1]}); "
            "pass a single channel, e.g. image[..., 1] for green, or a grey-scale conversion"
        )
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]  # one plane: a 2D image
    if array.ndim not in (2, 3):
        raise ParameterError(f"image must be 2D (Y, X) or 3D (Z, Y, X), got shape {array.shape}")
    if min(array.shape[-2:]) < 8:
        raise ParameterError(f"image is too small for spine detection: shape {array.shape}")
    if pixel_size_um is None:
        raise ParameterError(
            "pixel_size_um is required (the input does not carry one): pass pixel_size_um= or --pixel-size"
        )
    spacing = _pixel_size_pair(pixel_size_um)
    if array.ndim == 3:
        if z_step_um is None:
            raise ParameterError(
                f"z_step_um is required for a 3D stack of shape {array.shape} (Z, Y, X): "
                "pass z_step_um= or --z-step in micrometres"
            )
        if not np.isfinite(z_step_um) or z_step_um <= 0:
            raise ParameterError(f"z_step_um must be a positive number of micrometres, got {z_step_um!r}")
        spacing = (float(z_step_um), *spacing)
    data = array.astype(np.float32, copy=False)
    bad = ~np.isfinite(data)
    if bad.any():
        raise DataError(
            f"image contains {int(bad.sum())} NaN/infinite pixel(s) of {data.size}; "
            "fill them (e.g. with the median of the finite pixels) or crop them away first"
        )
    return PreparedImage(data=data, spacing_um=spacing)
