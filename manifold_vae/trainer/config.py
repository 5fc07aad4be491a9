"""What a training run is told (:class:`TrainConfig`) and what it reports (:class:`History`)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..likelihoods import Likelihood

__all__ = ["History", "Restarts", "TrainConfig", "check_sigma_start", "resolve_config"]


@dataclass
class Restarts:
    """How a model trained with restarts was chosen (``History.restarts``).

    Candidate 0 is the model as passed (its own weights and seed); candidate ``j >= 1`` is a
    copy with fresh weights drawn under seed ``seeds[j]``, trained with that seed. The kept
    candidate has the lowest final training loss among those that did not stop early.
    """

    #: Index of the kept candidate.
    chosen: int
    #: Each candidate's seed (initial weights of candidates ``j >= 1``, data order and noise).
    seeds: list[int]
    #: Each candidate's last epoch's loss (``nan`` when it completed no epoch).
    final_loss: list[float]
    #: Epochs of the screen, or ``None`` when every candidate was trained in full.
    screen_epochs: int | None
    #: Each candidate's history over the screen (or the full run without a screen).
    histories: list[History]

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "seeds": self.seeds,
            "final_loss": self.final_loss,
            "screen_epochs": self.screen_epochs,
            "candidates": [h.as_dict() for h in self.histories],
        }


@dataclass
class History:
    """What one model's training did: per-epoch means, and why it stopped."""

    #: Mean negative ELBO per datapoint, one entry per completed epoch.
    loss: list[float] = field(default_factory=list)
    #: Mean reconstruction log-likelihood per datapoint.
    reconstruction: list[float] = field(default_factory=list)
    #: Mean KL per datapoint.
    kl: list[float] = field(default_factory=list)
    #: ``None`` when all epochs ran, else the reason training stopped early.
    stopped: str | None = None
    #: With ``restarts > 1``: the candidates, their losses and the choice; else ``None``.
    restarts: Restarts | None = None

    def as_dict(self) -> dict:
        """The history as a JSON-able dict (``restarts`` only when there were restarts)."""
        values: dict[str, Any] = {
            "loss": self.loss,
            "reconstruction": self.reconstruction,
            "kl": self.kl,
            "stopped": self.stopped,
        }
        if self.restarts is not None:
            values["restarts"] = self.restarts.as_dict()
        return values


def check_sigma_start(sigma_start: Any) -> None:
    """``ValueError`` unless ``sigma_start`` is ``None`` or a positive finite number."""
    if sigma_start is not None and (
        isinstance(sigma_start, bool)
        or not (
            isinstance(sigma_start, numbers.Real) and math.isfinite(sigma_start) and sigma_start > 0
        )
    ):
        raise ValueError(
            f"sigma_start must be None or a positive finite number, got {sigma_start!r}"
        )


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    r"""The options of a training run, validated once when built.

    One object for :func:`~manifold_vae.training.fit` and
    :func:`~manifold_vae.ensemble.fit_ensemble` (which also take these options as keywords).

    Parameters
    ----------
    epochs, batch_size : int
        Passes over the data (``>= 0``) and minibatch size (``>= 1``).
    lr : float
        Adam's step size (positive, finite).
    betas : tuple of float
        Adam's moment coefficients (thesis Sec. 5.3: ``(0.9, 0.999)``).
    num_samples : int
        Latent samples per datapoint in the reconstruction term (``>= 1``).
    beta : float
        KL weight (finite, ``>= 0``).
    lr_final : float, optional
        Cosine step size from ``lr`` down to ``lr_final`` in ``(0, lr]``
        (:func:`~manifold_vae.trainer.learning_rate`); ``None`` keeps ``lr``.
    input_noise : float
        Standard deviation :math:`s \ge 0` of Gaussian noise added to each minibatch (needs a
        likelihood whose support is all of the data space).
    sigma_start, warmup_epochs : float, int
        Decoder-scale warm-up (:func:`~manifold_vae.trainer.decoder_sigma`): from
        ``sigma_start`` down to the likelihood's own scale over ``warmup_epochs`` epochs; needs
        a likelihood with a fixed decoder scale (``Likelihood.warmup_scale``).
    progress : bool
        Show a progress bar.

    Raises
    ------
    ValueError
        Naming the option that is out of range.
    """

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    num_samples: int = 1
    beta: float = 1.0
    lr_final: float | None = None
    input_noise: float = 0.0
    sigma_start: float | None = None
    warmup_epochs: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.num_samples < 1:
            raise ValueError(
                f"need epochs >= 0, batch_size >= 1, num_samples >= 1; got {self.epochs}, "
                f"{self.batch_size}, {self.num_samples}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.lr_final is not None and not (
            0 < self.lr_final <= self.lr and math.isfinite(self.lr_final)
        ):
            raise ValueError(
                f"lr_final must be None or in (0, lr = {self.lr:g}], got {self.lr_final}"
            )
        beta = self.beta
        if isinstance(beta, bool) or not (
            isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0
        ):
            raise ValueError(f"beta (the KL weight) must be finite and >= 0, got {beta!r}")
        noise = self.input_noise
        if isinstance(noise, bool) or not (
            isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0
        ):
            raise ValueError(f"input_noise must be a finite standard deviation >= 0, got {noise}")
        self._check_warmup()

    def _check_warmup(self) -> None:
        if not _is_integer(self.warmup_epochs) or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0, got {self.warmup_epochs!r}")
        start = self.sigma_start
        check_sigma_start(start)
        if start is None and self.warmup_epochs:
            raise ValueError(f"warmup_epochs = {self.warmup_epochs} needs sigma_start")
        if start is not None and self.warmup_epochs < 1:
            raise ValueError(f"sigma_start = {start} needs warmup_epochs >= 1")

    def check_likelihood(self, likelihood: Likelihood) -> None:
        """``ValueError`` unless the options suit the model's ``likelihood``.

        ``input_noise > 0`` needs a real-valued likelihood (``Likelihood.real_valued``);
        a warm-up needs a fixed decoder scale (``Likelihood.warmup_scale``).
        """
        if self.input_noise > 0 and not likelihood.real_valued:
            raise ValueError(
                f"input_noise = {self.input_noise} needs real-valued data, but the "
                f"{type(likelihood).__name__} likelihood has bounded support: noisy data would "
                "leave it"
            )
        if self.sigma_start is not None and likelihood.warmup_scale is None:
            raise ValueError(
                "sigma_start needs a Gaussian likelihood with fixed sigma_X (a likelihood whose "
                f"warmup_scale is not None), got {type(likelihood).__name__}"
            )

    def as_dict(self) -> dict[str, Any]:
        """The options as a JSON-able dict."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values


def resolve_config(config: TrainConfig | None, **options: Any) -> TrainConfig:
    """``config``, or a :class:`TrainConfig` of ``options`` when ``config`` is ``None``.

    The front ends (``fit``, ``fit_ensemble``) take the options either way; given both, an
    option that differs from its default would be silently ignored, so that is refused.

    Raises
    ------
    ValueError
        If ``config`` is given together with a non-default option, naming the options.
    """
    if config is None:
        return TrainConfig(**options)
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    changed = sorted(k for k, v in options.items() if v != defaults[k])
    if changed:
        raise ValueError(
            "pass the training options either as config or as keywords, not both: got config "
            f"and {', '.join(f'{k}={options[k]!r}' for k in changed)}"
        )
    return config
