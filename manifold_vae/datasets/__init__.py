"""Built-in datasets with known latent structure, and their generating processes.

Every dataset is a :class:`LatentDataset` (data, true latent angles, name) and, where the
process is known, carries it as a :class:`GenerativeModel` to compare learned models with.

* Sinusoids (thesis Sec. 5.1) and their frequency-domain form (Sec. 6.1): one phase.
* Toroidal images (Sec. 11.1): two phases.
* Circular pixel shifts of a photograph (Sec. 10.1): one shift angle.
* Objects seen from many angles (Sec. 10.2): COIL-20 from a local copy, or a rendered toy figure.
* A light source seen by sensors on a sphere: a direction on S^2.
* scikit-learn's bundled 8x8 digits (no known hyperspherical factor; the labels).

Pillow is imported only by the image datasets, when called.
"""

from .digits import digits
from .generative import GenerativeModel
from .objects import COIL20_URL, coil20, render_object, rotating_object
from .pixel_shift import default_image_path, load_grey_image, pixel_shift, shift_mean
from .sinusoids import (
    LatentDataset,
    frequency_mean,
    sinusoid_frequency_model,
    sinusoid_mean,
    sinusoid_model,
    sinusoids,
    sinusoids_frequency,
    sinusoids_frequency_grid,
    sinusoids_grid,
    to_frequency_domain,
)
from .spherical import fibonacci_sphere, sensor_mean, sensor_model, spherical_sensors
from .toroidal import toroidal, toroidal_grid, toroidal_mean, toroidal_model

__all__ = [
    "COIL20_URL",
    "GenerativeModel",
    "LatentDataset",
    "coil20",
    "default_image_path",
    "digits",
    "fibonacci_sphere",
    "frequency_mean",
    "load_grey_image",
    "pixel_shift",
    "render_object",
    "rotating_object",
    "sensor_mean",
    "sensor_model",
    "shift_mean",
    "sinusoid_frequency_model",
    "sinusoid_mean",
    "sinusoid_model",
    "sinusoids",
    "sinusoids_frequency",
    "sinusoids_frequency_grid",
    "sinusoids_grid",
    "spherical_sensors",
    "to_frequency_domain",
    "toroidal",
    "toroidal_grid",
    "toroidal_mean",
    "toroidal_model",
]
