r"""Many models of one shape as one step backend: stacked parameters, vmapped networks.

The members' parameters and buffers are stacked along a new leading member axis
(:func:`torch.func.stack_module_state`), and the networks run once per step for all members
through :func:`torch.func.vmap` of :func:`torch.func.functional_call`, so any encoder and
decoder ``nn.Module`` works. The loss is

.. math::

    L = \sum_{m=1}^M \frac{1}{|B_m|} \sum_{x \in B_m} -\mathrm{ELBO}_m(x),

whose gradient with respect to member :math:`m`'s parameters is exactly that member's own; Adam
is elementwise, so one Adam over the stacked parameters updates every member as its own Adam
would. Each member keeps its own data order and latent noise, drawn from two generators seeded
with its seed, exactly as a :class:`~manifold_vae.trainer.single.SingleBackend` draws them
(``randperm`` per epoch from a CPU generator; one standard normal tensor per step, turned into
a posterior sample by :meth:`~manifold_vae.manifolds.LatentManifold.reparameterize`). See
:mod:`manifold_vae.ensemble` for how closely the results agree.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ..likelihoods import Likelihood
from ..vae import ELBO, VAE, elbo_terms
from .backend import StepBackend, adam

__all__ = ["StackedBackend"]


class _Reconstruction(nn.Module):
    """``forward(points, x)``: a member's ``vae.point_log_likelihood`` (for ``functional_call``)."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, points: Tensor, x: Tensor) -> Tensor:
        return self.vae.point_log_likelihood(points, x)


class StackedBackend(StepBackend):
    """``M`` models of one shape as stacked tensors; see the module docstring.

    Parameters
    ----------
    vaes : list of VAE
        The members (checked to share one shape by the caller), moved to ``device``.
    data : list of Tensor, shape=[N, *data_shape]
        One validated tensor per member (the same object where members share data).
    seeds : list of int
        One seed per member.
    device : torch.device
        Where to train.
    lr, betas : float, tuple of float
        Adam's options.
    labels : list of str, optional
        Per member, the prefix of its warnings.
    """

    def __init__(
        self,
        vaes: list[VAE],
        data: list[Tensor],
        seeds: list[int],
        device: torch.device,
        lr: float,
        betas: tuple[float, float],
        labels: list[str] | None = None,
    ) -> None:
        super().__init__(seeds, data[0].shape[0], labels)
        self.vaes, self.device = vaes, device
        self.dtype = next(vaes[0].parameters()).dtype
        for vae in vaes:
            vae.to(device)
        self.base = copy.deepcopy(vaes[0]).train()  # the template the functional calls run on
        self.latent = self.base.latent
        self.reconstruction = _Reconstruction(self.base)
        # functional_call unties shared weights only when some exist (checking costs a step's
        # worth of Python each call otherwise)
        self.tied = any(
            len(list(named(remove_duplicate=False))) != len(list(named()))
            for named in (self.base.named_parameters, self.base.named_buffers)
        )
        params, buffers = stack_module_state(vaes)
        self.params: dict[str, Tensor] = params
        self.buffers: dict[str, Tensor] = buffers
        self.optimizer = adam(list(params.values()), lr, betas, foreach=True)
        # data: the distinct tensors stacked once, and each member's row in that stack
        rows: dict[int, int] = {}
        distinct: list[Tensor] = []
        for tensor in data:
            if id(tensor) not in rows:
                rows[id(tensor)] = len(distinct)
                distinct.append(tensor.to(device=device, dtype=self.dtype))
        self.data = torch.stack(distinct)  # (K, N, *data_shape)
        self.source = torch.tensor([rows[id(t)] for t in data], device=device)
        noise_device = device
        if device.type == "cuda" and device.index is None:
            noise_device = torch.device("cuda", torch.cuda.current_device())
        self.noise_generators = [torch.Generator(device=noise_device).manual_seed(s) for s in seeds]
        self.frozen: dict[str, Tensor] | None = None  # frozen rows of parameters/moments
        self.save_good()

    # --- bookkeeping of the last good epoch ------------------------------------------------
    def _moments(self) -> dict[str, Tensor]:
        """Adam's first and second moments of each stacked parameter (absent before a step)."""
        moments = {}
        for name, p in self.params.items():
            state = self.optimizer.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    moments[f"{key}:{name}"] = state[key]
        return moments

    def _all_state(self) -> dict[str, Tensor]:
        return {**self.params, **{f"buffer:{k}": v for k, v in self.buffers.items()}} | (
            self._moments()
        )

    def save_good(self) -> None:
        """Remember everything at the end of a good epoch (``fit``'s ``good_state``)."""
        self.good = {k: v.detach().clone() for k, v in self._all_state().items()}

    @torch.no_grad()
    def _restore_rows(self, rows: Tensor, source: dict[str, Tensor]) -> None:
        """Copy member rows of ``source`` into the live state (zeros for moments not in it)."""
        for key, tensor in self._all_state().items():
            if key in source:
                tensor.index_copy_(0, rows, source[key].index_select(0, rows))
            else:  # Adam moments created after the last good epoch: they were zero then
                tensor.index_fill_(0, rows, 0)

    def stop(self, member: int) -> None:
        """Restore ``member``'s last good epoch and hold it fixed from now on.

        The loop has already marked it as not live. Its gradient rows are zeroed before each
        later optimiser step and its rows put back after it (Adam's momentum would move them).
        """
        self._restore_rows(torch.tensor([member], device=self.device), self.good)
        rows = torch.tensor([m for m in range(self.size) if not self.live[m]], device=self.device)
        self.frozen = {k: v.detach().clone() for k, v in self._all_state().items()}
        self.frozen_rows = rows

    def step(self) -> None:
        """Adam over the stacked parameters; stopped members' rows are held where they were."""
        if self.frozen is not None:
            with torch.no_grad():
                for p in self.params.values():
                    if p.grad is not None:
                        p.grad.index_fill_(0, self.frozen_rows, 0)
        self.optimizer.step()
        if self.frozen is not None:  # undo what Adam's momentum did to frozen members
            self._restore_rows(self.frozen_rows, self.frozen)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # --- members and their likelihood buffers ----------------------------------------------
    @torch.no_grad()
    def model(self, member: int) -> VAE:
        """Member ``member``'s model with its current stacked weights written into it."""
        vae = self.vaes[member]
        for name, p in vae.named_parameters():
            p.copy_(self.params[name][member])
        for name, b in vae.named_buffers():
            b.copy_(self.buffers[name][member])
        return vae

    def likelihood(self, member: int) -> Likelihood:
        return self.vaes[member].likelihood

    def _likelihood_buffers(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.buffers.items() if k.startswith("likelihood.")}

    def save_likelihood_buffers(self) -> dict[str, Tensor]:
        return {k: v.clone() for k, v in self._likelihood_buffers().items()}

    @torch.no_grad()
    def restore_likelihood_buffers(self, saved: dict[str, Tensor]) -> None:
        for key, value in saved.items():
            self.buffers[key].copy_(value)

    @torch.no_grad()
    def set_likelihood_buffers(self, member: int, values: dict[str, Tensor]) -> None:
        r"""Write ``values`` into ``member``'s row of the stacked likelihood buffers.

        A stopped member's row is put back to its last good epoch by the next :meth:`step`
        (it is not evaluated any more).
        """
        for name, value in values.items():
            self.buffers[f"likelihood.{name}"][member].copy_(value)

    # --- one step --------------------------------------------------------------------------
    def _member_posterior(self, raw: Tensor, members: list[int]) -> list[tuple[int, str]]:
        """Members whose own raw outputs give invalid posterior parameters, with the error."""
        bad = []
        for row, member in enumerate(members):
            try:
                self.latent.posterior(raw[row])
            except ValueError as error:
                bad.append((member, str(error)))
        return bad

    def input_noise(self, members: list[int], size: int, scale: float) -> dict[int, Tensor]:
        """Each live member's input noise ``(size, *data_shape)`` of a step, from its generator.

        Drawn once per step before any latent noise, as :func:`~manifold_vae.training.fit`
        draws ``randn_like(batch)`` before the posterior sample.
        """
        shape = (size, *self.data.shape[2:])
        return {
            m: scale
            * torch.randn(
                shape, generator=self.noise_generators[m], dtype=self.dtype, device=self.device
            )
            for m in members
        }

    def terms(
        self,
        members: list[int],
        index: Tensor,
        num_samples: int,
        beta: float,
        noise: dict[int, Tensor] | None = None,
    ) -> tuple[ELBO | None, list[tuple[int, str]]]:
        r"""The ELBO terms of the ``A`` live ``members`` on their minibatches, with a graph.

        Encoder (vmapped over members) -> posterior with batch ``(A, b)`` -> each member's
        noise ``(S, b, dim)`` from its own generator, stacked to ``(S, A, b, dim)`` ->
        :meth:`~manifold_vae.manifolds.LatentManifold.reparameterize` -> decoder and
        log-likelihood (vmapped over members) ``(S, A, b)`` -> exact KL ``(A, b)`` outside vmap.

        Parameters
        ----------
        members : list of int
            Indices of the members to evaluate, increasing.
        index : Tensor, shape=[M, b]
            Every member's datapoint indices for this step.
        num_samples, beta
            As for :meth:`VAE.elbo`.
        noise : dict of int to Tensor, optional
            Per member, input noise ``(b, *data_shape)`` added to its minibatch
            (:meth:`input_noise`).

        Returns
        -------
        (ELBO with terms of shape (A, b), []), or (None, [(member, error message), ...]) when
        some members' posterior parameters are invalid (nothing is drawn from any generator).
        """
        every = len(members) == self.size
        rows = None if every else torch.tensor(members, device=self.device)

        def select(tensors: dict[str, Tensor], prefix: str) -> tuple[dict, dict]:
            inside, outside = {}, {}
            for name, tensor in tensors.items():
                tensor = tensor if every else tensor.index_select(0, rows)
                if name.startswith(prefix):
                    inside[name[len(prefix) :]] = tensor
                else:
                    outside[f"vae.{name}"] = tensor
            return inside, outside

        encoder_params, decoder_params = select(self.params, "encoder.")
        encoder_buffers, decoder_buffers = select(self.buffers, "encoder.")
        source, index = (self.source, index) if every else (self.source[rows], index[rows])
        # the rows source * n + index of the flattened data: one index_select, (A, b, *data_shape)
        flat = (source.unsqueeze(1) * self.n + index).reshape(-1)
        x = self.data.flatten(0, 1).index_select(0, flat).view(*index.shape, *self.data.shape[2:])
        if noise is not None:
            x = x + torch.stack([noise[m] for m in members])

        def encode(params: dict, buffers: dict, batch: Tensor) -> Tensor:
            return functional_call(
                self.base.encoder, (params, buffers), (batch,), tie_weights=self.tied
            )

        raw = vmap(encode)(encoder_params, encoder_buffers, x)  # (A, b, posterior_params)
        try:
            posterior = self.latent.posterior(raw)
        except ValueError:
            bad = self._member_posterior(raw, members)
            if not bad:
                raise
            return None, bad
        shape = (num_samples, x.shape[1], self.latent.dim)
        noise = torch.stack(
            [
                torch.randn(
                    shape, generator=self.noise_generators[m], dtype=self.dtype, device=self.device
                )
                for m in members
            ],
            dim=1,
        )  # (S, A, b, dim): each member's draw is the one its posterior.rsample would make
        z = self.latent.reparameterize(posterior, noise)
        points = self.latent.to_point(z)

        def reconstruct(params: dict, buffers: dict, points: Tensor, batch: Tensor) -> Tensor:
            return functional_call(
                self.reconstruction, (params, buffers), (points, batch), tie_weights=self.tied
            )

        log_likelihood = vmap(reconstruct, in_dims=(0, 0, 1, 0), out_dims=1)(
            decoder_params, decoder_buffers, points, x
        )  # (S, A, b)
        terms = elbo_terms(log_likelihood, self.base.kl(posterior, z), beta)
        return terms, []

    def finite_gradients(self, members: list[int]) -> Tensor:
        """Per listed member: are all its gradients finite? Shape ``(A,)``."""
        grads = [p.grad.reshape(self.size, -1) for p in self.params.values() if p.grad is not None]
        if not grads:
            return torch.ones(len(members), dtype=torch.bool, device=self.device)
        finite = torch.isfinite(torch.cat(grads, dim=1)).all(1)
        if len(members) == self.size:
            return finite
        return finite.index_select(0, torch.tensor(members, device=self.device))

    def finish(self) -> None:
        """The trained state into each member model, left in eval mode."""
        for m in range(self.size):
            self.model(m).eval()
