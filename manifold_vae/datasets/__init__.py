"""Built-in datasets with known latent structure."""

from .sinusoids import LatentDataset, sinusoid_mean, sinusoids, sinusoids_grid

__all__ = ["LatentDataset", "sinusoid_mean", "sinusoids", "sinusoids_grid"]
