"""Benchmarks: the exact distributions against torch and Pyro, and the cost of training a VAE.

Each benchmark is a command that prints a table and writes a JSON record (``make bench`` runs
both into ``results/bench/``):

* ``python -m manifold_vae.bench.distributions``: throughput of the circle and sphere heat
  kernels against ``torch.distributions.VonMises`` and Pyro's ``ProjectedNormal``, and their
  accuracy against the mpmath references of :mod:`distributions.reference`
  (:mod:`~manifold_vae.bench.circle`, :mod:`~manifold_vae.bench.sphere`);
* ``python -m manifold_vae.bench.vae_step``: milliseconds per training step of each latent
  manifold and of the Pyro path, and the speedup of vectorised ensemble training.
* ``python -m manifold_vae.bench.gpu`` (CUDA only, not in ``make bench``): float32 throughput
  of every kernel at :math:`10^7`-:math:`10^8` elements against its peers, the fraction of the
  memory bandwidth reached, and ``--profile`` tables of where the time goes.

The benchmarks live here, above both packages, so that ``distributions`` stays free of them;
nothing in ``manifold_vae`` imports this package except the ``bench`` command of the CLI.
Importing it loads nothing: import the module you run.
"""

__all__: list[str] = []
