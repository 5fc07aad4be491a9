"""One model as a step backend: its own Adam, its own random stream, its last good state."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from ..likelihoods import Likelihood
from ..vae import ELBO, VAE
from .backend import StepBackend, adam
from .resume import TrainingState

__all__ = ["SingleBackend"]


class SingleBackend(StepBackend):
    r"""One VAE trained on its data, as :func:`~manifold_vae.training.fit` trains it.

    Randomness: the data order comes from a CPU generator seeded with ``seed``; input noise
    and the posterior samples (``posterior.rsample``, which draws from torch's global RNG)
    come from the global RNG, swapped to this model's own stream (started as after
    ``torch.manual_seed(seed)``) for the duration of each draw and swapped back afterwards.
    So the caller's RNG state is untouched, and several single backends trained in one loop
    (ensemble members that cannot be stacked) each draw exactly what they would draw alone.

    Parameters
    ----------
    vae : VAE
        The model, trained in place (moved to ``device``, put in train mode).
    data : Tensor, shape=[N, *vae.data_shape]
        Validated training data (moved to ``device`` and the model's dtype).
    seed : int
        Seed of the data order and of the model's random stream.
    device : torch.device
        Where to train.
    lr, betas : float, tuple of float
        Adam's options.
    label : str
        Prefix of this model's warnings (e.g. its member number in an ensemble).
    """

    def __init__(
        self,
        vae: VAE,
        data: Tensor,
        seed: int,
        device: torch.device,
        lr: float,
        betas: tuple[float, float],
        label: str = "",
    ) -> None:
        super().__init__([seed], data.shape[0], [label])
        self.vae, self.device = vae, device
        self.dtype = next(vae.parameters()).dtype
        vae.to(device)
        self.data = data.to(device=device, dtype=self.dtype)
        self.optimizer = adam(vae.parameters(), lr, betas)
        self._cuda = device.type == "cuda"
        self._cuda_index = None
        if self._cuda:
            self._cuda_index = (
                device.index if device.index is not None else torch.cuda.current_device()
            )
        self._rng = self._seeded_rng(seed)
        self.save_good()
        vae.train()

    # --- the model's own random stream ---------------------------------------------------
    def _seeded_rng(self, seed: int) -> list[Tensor]:
        """The global RNG states (CPU, and CUDA when training there) after ``manual_seed``."""
        states = [torch.Generator(device="cpu").manual_seed(seed).get_state()]
        if self._cuda:
            with torch.random.fork_rng(devices=[self._cuda_index]):
                with torch.cuda.device(self._cuda_index):
                    torch.cuda.manual_seed(seed)
                states.append(torch.cuda.get_rng_state(self._cuda_index))
        return states

    def _get_rng(self) -> list[Tensor]:
        states = [torch.get_rng_state()]
        if self._cuda:
            states.append(torch.cuda.get_rng_state(self._cuda_index))
        return states

    def _set_rng(self, states: list[Tensor]) -> None:
        torch.set_rng_state(states[0])
        if self._cuda:
            torch.cuda.set_rng_state(states[1], self._cuda_index)

    @contextlib.contextmanager
    def own_rng(self) -> Iterator[None]:
        """Draw from this model's stream inside the block; the caller's is restored after."""
        caller = self._get_rng()
        self._set_rng(self._rng)
        try:
            yield
        finally:
            self._rng = self._get_rng()
            self._set_rng(caller)

    # --- the protocol --------------------------------------------------------------------
    def model(self, member: int) -> VAE:
        return self.vae

    def likelihood(self, member: int) -> Likelihood:
        return self.vae.likelihood

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def save_likelihood_buffers(self) -> dict[str, Tensor]:
        return {name: b.clone() for name, b in self.vae.likelihood.named_buffers()}

    @torch.no_grad()
    def restore_likelihood_buffers(self, saved: dict[str, Tensor]) -> None:
        for name, value in saved.items():
            self.vae.likelihood.get_buffer(name).copy_(value)

    @torch.no_grad()
    def set_likelihood_buffers(self, member: int, values: dict[str, Tensor]) -> None:
        for name, value in values.items():
            self.vae.likelihood.get_buffer(name).copy_(value)

    def input_noise(self, members: list[int], size: int, scale: float) -> dict[int, Tensor]:
        shape = (size, *self.data.shape[1:])
        with self.own_rng():
            noise = torch.randn(shape, dtype=self.dtype, device=self.device)
        return {0: scale * noise}

    def terms(
        self,
        members: list[int],
        index: Tensor,
        num_samples: int,
        beta: float,
        noise: dict[int, Tensor] | None = None,
    ) -> tuple[ELBO | None, list[tuple[int, str]]]:
        batch = self.data[index[0]]
        if noise is not None:
            batch = batch + noise[0]
        with self.own_rng():
            try:
                terms = self.vae.elbo(batch, num_samples=num_samples, beta=beta, validate=False)
            except ValueError as error:  # invalid posterior parameters (e.g. infinite time)
                return None, [(0, str(error))]
        return ELBO(*(t.unsqueeze(0) for t in terms)), []

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def finite_gradients(self, members: list[int]) -> Tensor:
        finite = all(
            bool(torch.isfinite(p.grad).all()) for p in self.vae.parameters() if p.grad is not None
        )
        return torch.tensor([finite], device=self.device)

    def stop(self, member: int) -> None:
        self.vae.load_state_dict(self._good_state)
        self.optimizer.load_state_dict(self._good_optim)

    def step(self) -> None:
        self.optimizer.step()

    # --- resuming ----------------------------------------------------------------------------
    def training_state(self, epoch: int, callbacks: dict[str, Any]) -> TrainingState:
        """The state after ``epoch`` completed epochs (the current, good one) to resume from."""
        history = self.histories[0]
        return TrainingState(
            epoch=epoch,
            optimizer=self.optimizer.state_dict(),
            rng=[state.clone() for state in self._rng],
            order=self.order_generators[0].get_state(),
            history={
                "loss": list(history.loss),
                "reconstruction": list(history.reconstruction),
                "kl": list(history.kl),
            },
            device=self.device.type,
            callbacks=callbacks,
        )

    def load_training_state(self, state: TrainingState) -> None:
        """Continue from ``state`` (the model's weights are already those of its epoch).

        Raises
        ------
        ValueError
            If the run trained on another type of device (its random stream differs there).
        """
        if state.device != self.device.type or len(state.rng) != len(self._rng):
            raise ValueError(
                f"the run trained on {state.device}; resume it there (device={state.device!r}), "
                f"not on {self.device.type}"
            )
        self.optimizer.load_state_dict(state.optimizer)
        self._rng = [rng.clone() for rng in state.rng]
        self.order_generators[0].set_state(state.order)
        history = self.histories[0]
        history.loss[:] = state.history["loss"]
        history.reconstruction[:] = state.history["reconstruction"]
        history.kl[:] = state.history["kl"]
        self.save_good()

    def save_good(self) -> None:
        self._good_state: dict[str, Any] = copy.deepcopy(self.vae.state_dict())
        self._good_optim: dict[str, Any] = copy.deepcopy(self.optimizer.state_dict())

    def finish(self) -> None:
        self.vae.eval()
