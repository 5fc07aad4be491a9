"""The thesis's published values (Tables 5.1 and 7.1), as mean and standard deviation.

Keys: ``(dataset noise sigma, decoder sigma_X)``; values: ``{column: (mean, std)}`` with columns
``neg_elbo``, ``kl``, ``reconstruction`` and ``mse``. The thesis's ``reconstruction`` column is
its Eq. 5.9 (squared error weighted by ``1 / sigma_X^2``, without the 1/2), its ``neg_elbo`` the
sum of that and the KL; Table 7.1's KL is the biased Monte Carlo estimate of its Eq. 7.9.
"""

from __future__ import annotations

__all__ = ["TABLE_5_1", "TABLE_7_1"]

Row = dict[str, tuple[float, float]]


def _row(neg_elbo, kl, reconstruction, mse) -> Row:
    return {"neg_elbo": neg_elbo, "kl": kl, "reconstruction": reconstruction, "mse": mse}


#: Table 5.1: baseline VAE, latent R^2.
TABLE_5_1: dict[tuple[float, float], Row] = {
    (0.01, 0.01): _row((-79.90, 0.19), (11.18, 0.15), (-91.09, 0.04), (1.59e-5, 0.64e-5)),
    (0.01, 0.1): _row((-28.87, 0.03), (4.95, 0.02), (-33.81, 0.02), (1.68e-3, 0.23e-3)),
    (0.01, 1.0): _row((25.41, 0.01), (1.74, 0.01), (23.67, 0.01), (4.22e-2, 0.34e-2)),
    (0.1, 0.01): _row((-79.01, 0.11), (11.10, 0.07), (-90.11, 0.08), (2.08e-4, 0.17e-4)),
    (0.1, 0.1): _row((-28.74, 0.16), (5.04, 0.10), (-33.77, 0.06), (1.52e-3, 0.17e-3)),
    (0.1, 1.0): _row((25.37, 0.01), (1.75, 0.01), (23.62, 0.07), (4.51e-2, 1.08e-2)),
    (1.0, 0.01): _row((919.28, 213.64), (17.53, 3.35), (901.75, 215.37), (1.99e-2, 0.43e-2)),
    (1.0, 0.1): _row((-12.99, 3.09), (7.79, 0.3), (-20.79, 2.90), (2.59e-2, 0.59e-2)),
    (1.0, 1.0): _row((25.53, 0.01), (1.79, 0.01), (23.74, 0.01), (4.61e-3, 0.15e-3)),
}

#: Table 7.1: diffusion VAE, latent S^1.
TABLE_7_1: dict[tuple[float, float], Row] = {
    (0.01, 0.01): _row((-84.99, 1.49), (3.49, 0.21), (-88.48, 1.30), (6.78e-4, 2.52e-4)),
    (0.01, 0.1): _row((-32.16, 0.29), (2.14, 0.29), (-34.30, 0.03), (8.40e-4, 7.02e-4)),
    (0.01, 1.0): _row((24.04, 0.06), (7.69e-1, 0.01e-1), (23.27, 0.06), (7.26e-1, 12.4e-1)),
    (0.1, 0.01): _row((-80.96, 3.39), (3.47, 0.07), (-84.43, 3.32), (1.49e-3, 0.66e-3)),
    (0.1, 0.1): _row((-31.45, 1.77), (1.98, 0.01), (-33.43, 1.77), (1.83e-2, 3.57e-2)),
    (0.1, 1.0): _row((24.05, 0.09), (7.68e-1, 0.01e-1), (23.28, 0.09), (9.51e-2, 17.5e-2)),
    (1.0, 0.01): _row((1849.45, 943.38), (5.03, 0.33), (1844.42, 943.40), (3.87e-1, 1.89e-1)),
    (1.0, 0.1): _row((1.32, 23.47), (3.20, 0.86), (-1.88, 22.71), (6.50e-1, 4.54e-1)),
    (1.0, 1.0): _row((24.15, 0.09), (7.78e-1, 0.06e-1), (23.37, 0.09), (2.86e-1, 1.88e-1)),
}
