r"""Training many VAEs of one shape at once, as one vectorised ensemble that reproduces ``fit``.

A table of the thesis is a grid of small VAEs of the same shape (datasets x decoder scales x
repetitions). :func:`fit_ensemble` trains :math:`M` of them together: their parameters and
buffers are stacked along a new leading member axis (:func:`torch.func.stack_module_state`),
and the networks run once per step for all members through
:func:`torch.func.vmap` of :func:`torch.func.functional_call`, so any encoder and decoder
``nn.Module`` works. The loss is

.. math::

    L = \sum_{m=1}^M \frac{1}{|B_m|} \sum_{x \in B_m} -\mathrm{ELBO}_m(x),

whose gradient with respect to member :math:`m`'s parameters is exactly that member's own; Adam
is elementwise, so one Adam over the stacked parameters updates every member as its own Adam
would. Each member keeps its own data order and latent noise, drawn from two generators seeded
with its seed exactly as :func:`~manifold_vae.training.fit` draws them (``randperm`` per epoch
from a CPU generator; one standard normal tensor per step, turned into a posterior sample by
:meth:`~manifold_vae.manifolds.LatentManifold.reparameterize`). So member :math:`m` ends where
``fit(vaes[m], data[m], ..., seed=seeds[m])`` would, up to floating-point rounding. The
forward pass and the Adam step agree bitwise, but for the last bit of a minibatch mean (a row of
an ``(M, B)`` tensor may be summed in another order than a vector of ``B``); the weight gradient
of a dense layer does not: ``fit``'s ``addmm`` backward computes it as ``grad^T @ x``, the
batched ``matmul`` as ``(x^T @ grad)^T`` (the same sums in another order). So the results
differ by accumulated rounding: about 1e-13 relative in float64 over a few epochs. (Adam, which
normalises each gradient entry, can amplify the rounding of entries whose gradient is pure
cancellation noise, most visibly at large learning rates.)
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from .training import (
    History,
    _adam,
    _check_input_noise,
    _check_lr_final,
    _check_options,
    _check_sigma_warmup,
    _resolve_device,
    _set_lr,
    _stop_message,
    decoder_sigma,
    learning_rate,
)
from .vae import ELBO, VAE, elbo_terms

__all__ = ["ensemble_key", "fit_ensemble"]


class _Reconstruction(nn.Module):
    """``forward(points, x)``: one member's ``vae._log_likelihood``, for ``functional_call``."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, points: Tensor, x: Tensor) -> Tensor:
        return self.vae._log_likelihood(points, x)


def _signature(vae: VAE) -> dict[str, Any]:
    """What must agree between ensemble members, by description."""
    networks = [
        (name, type(module).__qualname__, module.extra_repr())
        for name, module in vae.named_modules()
        if name and name != "likelihood" and not name.startswith("likelihood.")
    ]
    return {
        "model class": type(vae).__qualname__,
        "latent manifold": vae.latent.spec(),
        "data shape": tuple(vae.data_shape),
        "likelihood class": type(vae.likelihood).__qualname__,
        "network architecture": networks,
        "parameters (name, shape, dtype, requires_grad)": [
            (name, tuple(p.shape), p.dtype, p.requires_grad) for name, p in vae.named_parameters()
        ],
        "buffers (name, shape, dtype)": [
            (name, tuple(b.shape), b.dtype) for name, b in vae.named_buffers()
        ],
    }


def ensemble_key(vae: VAE) -> str:
    """Models with equal keys (and as many datapoints) can train in one :func:`fit_ensemble`."""
    return repr(_signature(vae))


def _first_difference(a: Any, b: Any) -> str:
    """``a vs b``, or for lists the first differing entries."""
    if isinstance(a, list) and isinstance(b, list):
        for x, y in zip(a, b, strict=False):
            if x != y:
                return f"{x} vs {y}"
        return f"{len(a)} entries vs {len(b)}"
    return f"{a} vs {b}"


def _check_members(vaes: Sequence[VAE], device: torch.device | None) -> list[VAE]:
    """``ValueError`` unless ``vaes`` is a non-empty sequence of distinct VAEs of one shape."""
    if isinstance(vaes, nn.Module) or not isinstance(vaes, Sequence) or len(vaes) == 0:
        raise ValueError(f"vaes must be a non-empty sequence of VAE models, got {vaes!r:.80}")
    vaes = list(vaes)
    for i, vae in enumerate(vaes):
        if not isinstance(vae, VAE):
            raise ValueError(f"vaes[{i}] must be a VAE, got {type(vae).__name__}")
    first: dict[int, int] = {}
    for i, vae in enumerate(vaes):
        if id(vae) in first:
            raise ValueError(
                f"vaes[{first[id(vae)]}] and vaes[{i}] are the same model object; each member "
                "must be its own model (e.g. copy.deepcopy it)"
            )
        first[id(vae)] = i
    reference = _signature(vaes[0])
    for i, vae in enumerate(vaes[1:], start=1):
        for key, value in _signature(vae).items():
            if value != reference[key]:
                raise ValueError(
                    f"vaes[{i}] differs from vaes[0] in its {key}: "
                    f"{_first_difference(value, reference[key])}; ensemble members must share "
                    "latent manifold, data shape, likelihood class and network architecture"
                )
    if device is None:
        devices = {next(vae.parameters()).device for vae in vaes}
        if len(devices) > 1:
            raise ValueError(
                f"the members are on different devices {sorted(map(str, devices))}: pass device"
            )
    return vaes


def _check_seeds(seeds: Sequence[int] | None, members: int) -> list[int]:
    if seeds is None:
        return list(range(members))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ValueError(f"seeds must be a sequence of integers, got {type(seeds).__name__}")
    if len(seeds) != members:
        raise ValueError(f"seeds must have one seed per member ({members}), got {len(seeds)}")
    for i, seed in enumerate(seeds):
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seeds[{i}] must be an integer, got {seed!r}")
    return [int(seed) for seed in seeds]


def _check_data(data: Tensor | Sequence[Tensor], vaes: list[VAE]) -> list[Tensor]:
    """One tensor per member (the same object when shared), each validated like ``fit``'s."""
    if torch.is_tensor(data):
        for vae in vaes:
            vae.likelihood.validate_data(data)
        return [data] * len(vaes)
    if not isinstance(data, Sequence) or len(data) != len(vaes):
        size = len(data) if isinstance(data, Sequence) else type(data).__name__
        raise ValueError(
            f"data must be one tensor shared by all members or a sequence of one tensor per "
            f"member ({len(vaes)}), got {size}"
        )
    for i, (vae, tensor) in enumerate(zip(vaes, data, strict=True)):
        try:
            vae.likelihood.validate_data(tensor)
        except ValueError as error:
            raise ValueError(f"data[{i}]: {error}") from error
        if tensor.shape != data[0].shape:
            raise ValueError(
                f"data[{i}] has shape {tuple(tensor.shape)} but data[0] has "
                f"{tuple(data[0].shape)}: all members need the same number of datapoints"
            )
    return list(data)


class _Ensemble:
    """The stacked state of the members and one training step; see :func:`fit_ensemble`."""

    def __init__(
        self,
        vaes: list[VAE],
        data: list[Tensor],
        seeds: list[int],
        device: torch.device,
        lr: float,
        betas: tuple[float, float],
    ) -> None:
        self.vaes, self.device, self.size = vaes, device, len(vaes)
        self.dtype = next(vaes[0].parameters()).dtype
        for vae in vaes:
            vae.to(device)
        self.base = copy.deepcopy(vaes[0]).train()  # the template the functional calls run on
        self.latent = self.base.latent
        self.reconstruction = _Reconstruction(self.base)
        params, buffers = stack_module_state(vaes)
        self.params: dict[str, Tensor] = params
        self.buffers: dict[str, Tensor] = buffers
        self.optimizer = _adam(list(params.values()), lr, betas)
        # data: the distinct tensors stacked once, and each member's row in that stack
        rows: dict[int, int] = {}
        distinct: list[Tensor] = []
        for tensor in data:
            if id(tensor) not in rows:
                rows[id(tensor)] = len(distinct)
                distinct.append(tensor.to(device=device, dtype=self.dtype))
        self.data = torch.stack(distinct)  # (K, N, *data_shape)
        self.source = torch.tensor([rows[id(t)] for t in data], device=device)
        self.n = self.data.shape[1]
        self.seeds = seeds
        self.order_generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        noise_device = device
        if device.type == "cuda" and device.index is None:
            noise_device = torch.device("cuda", torch.cuda.current_device())
        self.noise_generators = [torch.Generator(device=noise_device).manual_seed(s) for s in seeds]
        self.histories = [History() for _ in vaes]
        self.live = [True] * self.size
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

    def freeze(self, member: int, epoch: int, problem: tuple[str, str]) -> None:
        """Stop ``member``: restore its last good epoch, report like ``fit``, keep it fixed."""
        self.live[member] = False
        history = self.histories[member]
        history.stopped = _stop_message(problem, epoch)
        warnings.warn(
            f"fit_ensemble member {member} (seed {self.seeds[member]}): {history.stopped}",
            RuntimeWarning,
            stacklevel=3,
        )
        self._restore_rows(torch.tensor([member], device=self.device), self.good)
        rows = torch.tensor([m for m in range(self.size) if not self.live[m]], device=self.device)
        self.frozen = {k: v.detach().clone() for k, v in self._all_state().items()}
        self.frozen_rows = rows

    def hold_frozen(self) -> None:
        """Undo what an optimiser step did to frozen members (Adam momentum moves them)."""
        if self.frozen is not None:
            self._restore_rows(self.frozen_rows, self.frozen)

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
        rows = torch.tensor(members, device=self.device)
        every = len(members) == self.size

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
        x = self.data[self.source[rows].unsqueeze(1), index[rows]]  # (A, b, *data_shape)
        if noise is not None:
            x = x + torch.stack([noise[m] for m in members])

        def encode(params: dict, buffers: dict, batch: Tensor) -> Tensor:
            return functional_call(self.base.encoder, (params, buffers), (batch,))

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
            return functional_call(self.reconstruction, (params, buffers), (points, batch))

        log_likelihood = vmap(reconstruct, in_dims=(0, 0, 1, 0), out_dims=1)(
            decoder_params, decoder_buffers, points, x
        )  # (S, A, b)
        terms = elbo_terms(log_likelihood, self.base.kl(posterior, z), beta)
        return terms, []

    def finite_gradients(self) -> Tensor:
        """Per member: are all its gradients finite? Shape ``(M,)``."""
        grads = [p.grad.reshape(self.size, -1) for p in self.params.values() if p.grad is not None]
        if not grads:
            return torch.ones(self.size, dtype=torch.bool, device=self.device)
        return torch.isfinite(torch.cat(grads, dim=1)).all(1)

    @torch.no_grad()
    def set_sigmas(self, sigmas: Sequence[float] | Tensor) -> None:
        r"""Every member's Gaussian decoder scale (the stacked ``likelihood.scale`` buffer).

        A stopped member's row is put back to its last good epoch's scale by
        :meth:`hold_frozen` after the next step (it is not evaluated any more); all rows get
        their original buffers back before :meth:`write_back`.
        """
        scale = self.buffers["likelihood.scale"]
        scale.copy_(torch.as_tensor(sigmas, dtype=scale.dtype, device=scale.device))

    @torch.no_grad()
    def write_back(self) -> None:
        """The trained state into each member model, left in eval mode."""
        for m, vae in enumerate(self.vaes):
            for name, p in vae.named_parameters():
                p.copy_(self.params[name][m])
            for name, b in vae.named_buffers():
                b.copy_(self.buffers[name][m])
            vae.eval()


def fit_ensemble(
    vaes: Sequence[VAE],
    data: Tensor | Sequence[Tensor],
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    seeds: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    num_samples: int = 1,
    beta: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    progress: bool = True,
    lr_final: float | None = None,
    input_noise: float = 0.0,
    sigma_start: float | None = None,
    warmup_epochs: int = 0,
) -> list[History]:
    r"""Train ``M`` VAEs of one shape together, each exactly as :func:`fit` would train it.

    Member ``m`` is trained as ``fit(vaes[m], data[m], epochs, batch_size, lr,
    seed=seeds[m], device, num_samples, beta, betas, lr_final=lr_final,
    input_noise=input_noise, sigma_start=sigma_start, warmup_epochs=warmup_epochs)`` would
    train it, to floating-point rounding (see the module docstring), but all members take
    each step together: one vectorised forward and backward pass over tensors of shape
    ``(M, batch, ...)``, one Adam step over the stacked parameters. The trained weights are
    written back into each model, which is left in eval mode on ``device``.

    Divergence is handled per member, as :func:`fit` does it: when a member's loss or
    gradients become non-finite or its posterior parameters invalid, that member alone stops;
    its parameters (and optimiser moments) are restored to the end of its last good epoch and
    stay fixed for the rest of training, a ``RuntimeWarning`` names the member, and its
    ``History.stopped`` says why in the words :func:`fit` would use. The others go on.

    Parameters
    ----------
    vaes : sequence of VAE
        The members, trained in place. They must share the latent manifold (equal ``spec()``),
        data shape, likelihood class, model class and network architecture (parameter and
        buffer names, shapes and dtypes; module types). They may differ in their weights and
        likelihood buffers (e.g. the Gaussian :math:`\sigma_X`). The latent manifold must
        implement :meth:`~manifold_vae.manifolds.LatentManifold.reparameterize`, and the
        likelihood's :meth:`~manifold_vae.likelihoods.Likelihood.log_density` and the networks
        must be vmap-able (no data-dependent Python control flow, no random operations such as
        dropout; buffers are read, not updated).
    data : Tensor or sequence of Tensor, shape=[N, *data_shape]
        One tensor shared by all members, or one per member (the same ``N`` and shape; e.g.
        the datasets :math:`X_{0.01}, X_{0.1}, X_1` of one grid), each validated by the
        member's likelihood.
    epochs, batch_size, lr, num_samples, beta, betas, progress, lr_final, input_noise
        As for :func:`fit` (shared by all members); the progress bar shows the members' mean
        loss.
    sigma_start, warmup_epochs
        As for :func:`fit`: each member's decoder scale follows
        :func:`~manifold_vae.training.decoder_sigma` from ``sigma_start`` down to its own
        :math:`\sigma_X`.
    seeds : sequence of int, optional
        One seed per member, of its data order and latent noise (default ``range(M)``).
    device : str or torch.device, optional
        Where to train (default: where the members are; they must then all be on one device).

    Returns
    -------
    list of History
        One per member, as :func:`fit` returns it.

    Raises
    ------
    ValueError
        For invalid options, members that differ in more than weights and likelihood
        buffers, data of the wrong shape or size, or a wrong number of seeds.
    NotImplementedError
        If the latent manifold does not implement ``reparameterize``.
    """
    _check_options(epochs, batch_size, num_samples, lr)
    _check_lr_final(lr, lr_final)
    vaes = _check_members(vaes, device)
    _check_input_noise(input_noise, vaes[0])
    _check_sigma_warmup(sigma_start, warmup_epochs, vaes[0])
    seeds = _check_seeds(seeds, len(vaes))
    tensors = _check_data(data, vaes)
    device = _resolve_device(device, vaes[0])
    ensemble = _Ensemble(vaes, tensors, seeds, device, lr, betas)
    optimizer, n = ensemble.optimizer, ensemble.n
    sigmas = [vae.likelihood.sigma for vae in vaes] if sigma_start is not None else None
    original_scales = ensemble.buffers["likelihood.scale"].clone() if sigmas else None
    bar = tqdm(
        range(epochs),
        desc=f"fit_ensemble {len(vaes)} x {ensemble.latent!r}",
        disable=not progress,
        leave=False,
    )
    for epoch in bar:
        if not any(ensemble.live):
            break
        _set_lr(optimizer, learning_rate(epoch, epochs, lr, lr_final))
        if sigmas is not None:
            ensemble.set_sigmas(
                [decoder_sigma(epoch, s, sigma_start, warmup_epochs) for s in sigmas]
            )
        orders = torch.stack(
            [
                torch.randperm(n, generator=generator)
                if live
                else torch.arange(n)  # a stopped member draws nothing, as fit would
                for generator, live in zip(ensemble.order_generators, ensemble.live, strict=True)
            ]
        ).to(device)
        totals = torch.zeros(ensemble.size, 3, dtype=torch.float64)
        for start in range(0, n, batch_size):
            index = orders[:, start : start + batch_size]
            members = [m for m in range(ensemble.size) if ensemble.live[m]]
            noise = None
            if input_noise > 0:  # drawn once: a retry after freezing members reuses it
                noise = ensemble.input_noise(members, index.shape[1], input_noise)
            terms = None
            while members:
                terms, bad = ensemble.terms(members, index, num_samples, beta, noise)
                if not bad:
                    break
                for member, message in bad:
                    ensemble.freeze(member, epoch, ("invalid distribution parameters", message))
                members = [m for m in members if ensemble.live[m]]
            if terms is None:  # every member has stopped
                break
            loss = -terms.elbo.mean(1)  # (A,): each member's mean negative ELBO
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            rows = torch.tensor(members, device=device)
            finite = torch.isfinite(loss) & ensemble.finite_gradients().index_select(0, rows)
            if not bool(finite.all()):
                for row in (~finite).nonzero().flatten().tolist():
                    problem = ("non-finite loss or gradient", f"loss {loss[row].item()}")
                    ensemble.freeze(members[row], epoch, problem)
                with torch.no_grad():
                    for p in ensemble.params.values():
                        if p.grad is not None:
                            p.grad.index_fill_(0, ensemble.frozen_rows, 0)
            optimizer.step()
            ensemble.hold_frozen()
            stats = torch.stack(
                [loss.detach(), terms.reconstruction.detach().mean(1), terms.kl.detach().mean(1)],
                dim=1,
            )  # (A, 3)
            totals[rows.cpu()] += index.shape[1] * stats.cpu().double()
        totals /= n
        done = [m for m in range(ensemble.size) if ensemble.live[m]]
        for m in done:
            history = ensemble.histories[m]
            history.loss.append(totals[m, 0].item())
            history.reconstruction.append(totals[m, 1].item())
            history.kl.append(totals[m, 2].item())
        if done:
            mean = math.fsum(ensemble.histories[m].loss[-1] for m in done) / len(done)
            bar.set_postfix(loss=f"{mean:.4g}")
            ensemble.save_good()
    if original_scales is not None:
        ensemble.set_sigmas(original_scales)
    ensemble.write_back()
    return ensemble.histories
