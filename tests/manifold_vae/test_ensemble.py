"""``fit_ensemble``: the same results as ``fit`` one model at a time, divergence, validation.

Equivalence tolerances. The ensemble is not bitwise equal to ``fit``: ``fit``'s ``addmm``
backward computes a dense layer's weight gradient as ``grad^T @ x``, the vmapped (batched)
``matmul`` as ``(x^T @ grad)^T``, the same sums in another order (forward passes and Adam steps
are bitwise equal but for the last bit of some minibatch means). So the results agree to
accumulated rounding: over the few epochs here, relative differences stay below ~1e-13 in
float64 and ~1e-5 in float32; the tests allow ``rtol = 1e-10`` (float64) and ``1e-4`` (float32),
with an absolute floor for entries near zero.
"""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch import nn

from manifold_vae.datasets import sinusoids
from manifold_vae.ensemble import fit_ensemble
from manifold_vae.likelihoods import Bernoulli, Gaussian, GaussianLearnedScale
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean
from manifold_vae.training import History, fit
from manifold_vae.vae import VAE

#: (rtol, atol) of parameters and History entries, by dtype; see the module docstring.
TOLERANCE = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-4, 1e-5)}


# One torch thread: tiny models run many times faster on a busy 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _vae(latent, sigma: float = 0.1, seed: int = 0, dtype=torch.float64, **kwargs) -> VAE:
    torch.manual_seed(seed)
    return VAE(latent, (25,), Gaussian(sigma), **kwargs).to(dtype)


def _data(noise: float, seed: int, n: int = 200, dtype=torch.float64) -> torch.Tensor:
    return sinusoids(n=n, noise=noise, seed=seed, dtype=dtype).data


def _sequential(vaes, data, seeds, **options) -> tuple[list[VAE], list[History]]:
    """Deep copies of ``vaes`` trained one by one with ``fit``."""
    models = [copy.deepcopy(v) for v in vaes]
    data = data if isinstance(data, list) else [data] * len(vaes)
    histories = [
        fit(m, d, seed=s, progress=False, **options)
        for m, d, s in zip(models, data, seeds, strict=True)
    ]
    return models, histories


def _assert_same_models(a: list[VAE], b: list[VAE], dtype) -> None:
    rtol, atol = TOLERANCE[dtype]
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x.state_dict().keys() == y.state_dict().keys()
        for key, value in x.state_dict().items():
            other = y.state_dict()[key]
            assert value.dtype == other.dtype and value.device == other.device
            torch.testing.assert_close(value, other, rtol=rtol, atol=atol, msg=f"{i} {key}")


def _stop_reason(stopped: str | None) -> str | None:
    """``History.stopped`` with the loss it quotes rounded to 6 digits (rounding may differ)."""
    if stopped is None:
        return None
    return re.sub(r"loss (\S+)\)", lambda m: f"loss {float(m.group(1)):.6g})", stopped)


def _assert_same_histories(a: list[History], b: list[History], dtype) -> None:
    rtol, _ = TOLERANCE[dtype]
    for x, y in zip(a, b, strict=True):
        assert _stop_reason(x.stopped) == _stop_reason(y.stopped)
        for key in ("loss", "reconstruction", "kl"):
            torch.testing.assert_close(
                torch.tensor(getattr(x, key), dtype=torch.float64),
                torch.tensor(getattr(y, key), dtype=torch.float64),
                rtol=rtol,
                atol=0.0,
            )


# --- equivalence with fit --------------------------------------------------------------------
@pytest.mark.parametrize("latent", [Euclidean(2), Circle(), CliffordTorus()], ids=repr)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_ensemble_equals_sequential_fit(latent, dtype):
    """2 sigma_X x 2 datasets, 200 points in batches of 64 (a last partial batch of 8)."""
    data = [_data(0.1, 1, dtype=dtype), _data(1.0, 2, dtype=dtype)]
    vaes, member_data = [], []
    for sigma in (0.1, 1.0):
        for dataset in data:
            vaes.append(_vae(latent, sigma, seed=len(vaes), dtype=dtype))
            member_data.append(dataset)
    seeds = [3, 1, 4, 1]  # a repeated seed is fine: members own their generators
    options = {"epochs": 3, "batch_size": 64, "lr": 1e-2}
    models, expected = _sequential(vaes, member_data, seeds, **options)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    histories = fit_ensemble(vaes, member_data, seeds=seeds, progress=False, **options)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is not used
    assert all(not v.training for v in vaes)
    assert all(len(h.loss) == 3 and h.stopped is None for h in histories)
    _assert_same_models(vaes, models, dtype)
    _assert_same_histories(histories, expected, dtype)


@pytest.mark.parametrize(
    "likelihood",
    [GaussianLearnedScale(0.5), GaussianLearnedScale(2.0, shared=True), Bernoulli()],
    ids=repr,
)
def test_other_likelihoods_several_samples_and_beta(likelihood):
    """Learned scales are trained parameters of each member; S = 2 samples; beta = 0.5."""
    data = torch.rand(100, 25, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    vaes = []
    for seed in range(3):
        torch.manual_seed(seed)
        vaes.append(VAE(Circle(), (25,), copy.deepcopy(likelihood)).double())
    options = {"epochs": 2, "batch_size": 32, "lr": 1e-2, "num_samples": 2, "beta": 0.5}
    models, expected = _sequential(vaes, data, [0, 1, 2], **options)
    histories = fit_ensemble(vaes, data, progress=False, **options)  # seeds default 0, 1, 2
    _assert_same_models(vaes, models, torch.float64)
    _assert_same_histories(histories, expected, torch.float64)


def test_custom_networks():
    """Any encoder/decoder module works: here a Sequential encoder with tanh, on images."""

    def make(seed: int) -> VAE:
        torch.manual_seed(seed)
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.Tanh(), nn.Linear(6, 4))
        decoder = nn.Sequential(nn.Linear(2, 16), nn.Unflatten(1, (1, 4, 4)))
        return VAE(Euclidean(2), (1, 4, 4), Gaussian(0.5), encoder=encoder, decoder=decoder)

    data = torch.randn(50, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    vaes = [make(0), make(1)]
    options = {"epochs": 2, "batch_size": 16, "lr": 1e-2}
    models, expected = _sequential(vaes, data, [7, 8], **options)
    histories = fit_ensemble(vaes, data, seeds=[7, 8], progress=False, **options)
    _assert_same_models(vaes, models, torch.float32)
    _assert_same_histories(histories, expected, torch.float32)


def test_zero_epochs_and_a_single_member():
    vae = _vae(Circle())
    before = copy.deepcopy(vae.state_dict())
    (history,) = fit_ensemble([vae], _data(0.1, 0), epochs=0, progress=False)
    assert history == History()
    for key, value in vae.state_dict().items():
        assert torch.equal(value, before[key])
    models, expected = _sequential([vae], _data(0.1, 0), [0], epochs=1)
    histories = fit_ensemble([vae], _data(0.1, 0), epochs=1, progress=False)
    _assert_same_models([vae], models, torch.float64)
    _assert_same_histories(histories, expected, torch.float64)


def test_progress_bar_runs():
    vaes = [_vae(Euclidean(2), seed=s) for s in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a normal run warns about nothing
        histories = fit_ensemble(vaes, _data(0.1, 0, n=40), epochs=2, batch_size=16)
    assert [len(h.loss) for h in histories] == [2, 2]


# --- divergence ------------------------------------------------------------------------------
def test_one_diverging_member_stops_alone():
    """Member 1's data hold an overflowing value: it alone stops, as fit stops it."""
    data = _data(0.1, 1, n=64, dtype=torch.float32)
    bad = data.clone()
    bad[5] = 1e30  # its squared error is inf in float32
    vaes = [_vae(Circle(), seed=s, dtype=torch.float32) for s in range(3)]
    initial = copy.deepcopy(vaes[1].state_dict())
    member_data = [data, bad, data]
    options = {"epochs": 3, "batch_size": 16, "lr": 3e-3}
    with pytest.warns(RuntimeWarning, match="non-finite"):
        models, expected = _sequential(vaes, member_data, [0, 1, 2], **options)
    with pytest.warns(RuntimeWarning, match=r"member 1 \(seed 1\): non-finite") as record:
        histories = fit_ensemble(vaes, member_data, progress=False, **options)
    assert len(record) == 1
    assert histories[1].stopped == expected[1].stopped
    assert "restored to the end of epoch 0" in histories[1].stopped
    assert histories[1].loss == [] and [len(histories[m].loss) for m in (0, 2)] == [3, 3]
    for key, value in vaes[1].state_dict().items():  # frozen: Adam momentum did not move it
        assert torch.equal(value, initial[key]), key
    _assert_same_models(vaes, models, torch.float32)
    _assert_same_histories(histories, expected, torch.float32)


@pytest.mark.parametrize(
    "warmup", [{}, {"sigma_start": 0.5, "warmup_epochs": 3}], ids=["plain", "warmup"]
)
def test_divergence_in_later_epochs_matches_fit(warmup):
    """A large lr: some members diverge in epoch 1 or 2, others survive, all as with fit.

    The stop messages quote a huge finite loss (the posterior scale is clamped, so nothing
    overflows to inf), which the two trainers may round differently in the last digits. With
    a warm-up, members stop at a warm-up scale and still end with their own sigma_X.
    """
    data = _data(0.1, 1, n=128)
    vaes = [_vae(Euclidean(2), 0.01, seed=s) for s in range(6)]
    options = {"epochs": 4, "batch_size": 32, "lr": 3.0, **warmup}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        models, expected = _sequential(vaes, data, list(range(6)), **options)
        histories = fit_ensemble(vaes, data, progress=False, **options)
    lengths = [len(h.loss) for h in expected]
    assert 0 in lengths and 1 in lengths and 4 in lengths  # the scenario this test is about
    _assert_same_histories(histories, expected, torch.float64)
    _assert_same_models(vaes, models, torch.float64)
    assert [v.likelihood.scale.item() for v in (*vaes, *models)] == [0.01] * 12


def test_invalid_posterior_parameters_stop_only_that_member():
    """A member whose encoder outputs nan: invalid posterior, reported in fit's words."""
    data = _data(0.1, 1, n=64)
    vaes = [_vae(Circle(), seed=s) for s in range(3)]
    with torch.no_grad():
        vaes[2].encoder.layers[-1].bias[2] = float("nan")  # the time: invalid at once
    options = {"epochs": 2, "batch_size": 32, "lr": 1e-2}
    with pytest.warns(RuntimeWarning, match="invalid distribution parameters"):
        models, expected = _sequential(vaes, data, [0, 1, 2], **options)
    with pytest.warns(RuntimeWarning, match=r"member 2 .*invalid distribution parameters"):
        histories = fit_ensemble(vaes, data, progress=False, **options)
    assert histories[2].stopped == expected[2].stopped
    assert [len(h.loss) for h in histories] == [2, 2, 0]
    _assert_same_histories(histories[:2], expected[:2], torch.float64)
    _assert_same_models(vaes[:2], models[:2], torch.float64)


# --- validation ------------------------------------------------------------------------------
def _members(**kwargs) -> list[VAE]:
    return [_vae(Circle(), seed=s, **kwargs) for s in range(2)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: [_vae(Circle()), _vae(Euclidean(2))], "latent manifold"),
        (lambda: [_vae(Circle()), _vae(CliffordTorus())], "latent manifold"),
        (
            lambda: [
                _vae(Circle()),
                VAE(Circle(), (24,), Gaussian(0.1)).double(),
            ],
            "data shape",
        ),
        (
            lambda: [_vae(Circle()), VAE(Circle(), (25,), Bernoulli()).double()],
            "likelihood class",
        ),
        (lambda: [_vae(Circle()), _vae(Circle(), hidden=9)], "network architecture"),
        (lambda: [_vae(Circle()), _vae(Circle(), activation="tanh")], "network architecture"),
        (lambda: [_vae(Circle()), _vae(Circle(), dtype=torch.float32)], "parameters"),
        (
            lambda: [
                VAE(Circle(), (25,), GaussianLearnedScale()),
                VAE(Circle(), (25,), GaussianLearnedScale(shared=True)),
            ],
            "parameters",
        ),
    ],
    ids=[
        "circle-vs-euclidean",
        "circle-vs-torus",
        "data-shape",
        "likelihood",
        "hidden",
        "activation",
        "dtype",
        "learned-scale-shape",
    ],
)
def test_members_that_differ_in_shape_are_refused(make, message):
    with pytest.raises(ValueError, match=rf"vaes\[1\] differs from vaes\[0\] in its {message}"):
        fit_ensemble(make(), _data(0.1, 0, n=8), epochs=1, progress=False)


def test_different_sigma_x_is_allowed():
    vaes = [_vae(Circle(), 0.1), _vae(Circle(), 1.0, seed=1)]
    fit_ensemble(vaes, _data(0.1, 0, n=8), epochs=1, progress=False)
    assert [v.likelihood.sigma for v in vaes] == [0.1, 1.0]
    assert [v.likelihood.scale.item() for v in vaes] == [0.1, 1.0]


@pytest.mark.parametrize(
    ("vaes", "message"),
    [
        ([], "non-empty sequence"),
        (None, "non-empty sequence"),
        ("vae", "vaes\\[0\\] must be a VAE"),
    ],
    ids=["empty", "none", "string"],
)
def test_bad_member_lists_raise(vaes, message):
    with pytest.raises(ValueError, match=message):
        fit_ensemble(vaes, _data(0.1, 0, n=8), progress=False)


def test_a_model_given_twice_raises():
    vae = _vae(Circle())
    with pytest.raises(ValueError, match=r"vaes\[0\] and vaes\[1\] are the same model"):
        fit_ensemble([vae, vae], _data(0.1, 0, n=8), progress=False)


@pytest.mark.parametrize(
    ("make_data", "message"),
    [
        (lambda: [_data(0.1, 0, n=8)] * 3, "one tensor per member \\(2\\), got 3"),
        (lambda: [_data(0.1, 0, n=8), _data(0.1, 0, n=9)], "data\\[1\\] has shape"),
        (lambda: [_data(0.1, 0, n=8), torch.rand(8, 24)], "data\\[1\\]: data must have shape"),
        (lambda: [torch.full((8, 25), float("nan")), _data(0.1, 0, n=8)], "data\\[0\\]: .*nan"),
        (lambda: torch.rand(8, 24), "must have shape"),
        (lambda: 3.0, "one tensor shared by all members"),
    ],
    ids=["count", "sizes", "shape", "nan", "shared-shape", "float"],
)
def test_bad_data_raises(make_data, message):
    vaes = _members()
    before = [copy.deepcopy(v.state_dict()) for v in vaes]
    with pytest.raises(ValueError, match=message):
        fit_ensemble(vaes, make_data(), progress=False)
    for vae, state in zip(vaes, before, strict=True):
        assert all(torch.equal(v, state[k]) for k, v in vae.state_dict().items())


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([0], "one seed per member \\(2\\), got 1"),
        ([0, 1, 2], "one seed per member \\(2\\), got 3"),
        ([0, 1.5], "seeds\\[1\\] must be an integer"),
        ([0, True], "seeds\\[1\\] must be an integer"),
        (7, "sequence of integers"),
    ],
    ids=["short", "long", "float", "bool", "int"],
)
def test_bad_seeds_raise(seeds, message):
    with pytest.raises(ValueError, match=message):
        fit_ensemble(_members(), _data(0.1, 0, n=8), seeds=seeds, progress=False)


def test_learning_rate_schedule_ensemble_equals_fit():
    """The cosine schedule (lr_final) is applied per epoch in both trainers alike."""
    vaes = [_vae(Circle(), sigma, seed=i) for i, sigma in enumerate((0.1, 1.0))]
    data = _data(0.1, 1, n=130)
    options = {"epochs": 3, "batch_size": 64, "lr": 1e-2, "lr_final": 1e-4}
    models, expected = _sequential(vaes, data, [0, 1], **options)
    histories = fit_ensemble(vaes, data, progress=False, **options)
    _assert_same_models(vaes, models, torch.float64)
    _assert_same_histories(histories, expected, torch.float64)
    constant, _ = _sequential(
        [_vae(Circle(), 0.1, seed=0)], data, [0], **{**options, "lr_final": None}
    )
    key = "decoder.layers.0.weight"
    assert not torch.allclose(constant[0].state_dict()[key], vaes[0].state_dict()[key])


def test_sigma_warmup_ensemble_equals_fit():
    """Each member warms up from sigma_start to its own sigma_X; its scale is restored after."""
    sigmas = (0.01, 0.1, 1.0)  # the last one is above sigma_start: no warm-up for it
    vaes = [_vae(Circle(), sigma, seed=i) for i, sigma in enumerate(sigmas)]
    data = _data(0.1, 1, n=130)
    options = {"epochs": 3, "batch_size": 64, "lr": 1e-2, "sigma_start": 0.5, "warmup_epochs": 2}
    models, expected = _sequential(vaes, data, [0, 1, 2], **options)
    histories = fit_ensemble(vaes, data, progress=False, **options)
    _assert_same_models(vaes, models, torch.float64)
    _assert_same_histories(histories, expected, torch.float64)
    assert [v.likelihood.scale.item() for v in vaes] == list(sigmas)
    hot = _vae(Circle(), 0.5, seed=0)  # member 0's first epoch is an epoch at sigma_X = 0.5
    first = fit(hot, data, epochs=1, batch_size=64, lr=1e-2, seed=0, progress=False).loss[0]
    assert histories[0].loss[0] == pytest.approx(first, rel=1e-10)


@pytest.mark.parametrize(
    "options",
    [
        {"epochs": -1},
        {"batch_size": 0},
        {"num_samples": 0},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"lr_final": 0.0},
        {"lr_final": 1.0},
        {"warmup_epochs": 2},
        {"sigma_start": 1.0},
        {"sigma_start": -1.0, "warmup_epochs": 2},
    ],
    ids=repr,
)
def test_bad_options_raise(options):
    with pytest.raises(ValueError, match=next(iter(options))):  # the message names the option
        fit_ensemble(_members(), _data(0.1, 0, n=8), progress=False, **options)


def test_members_on_different_devices_need_a_device():
    vaes = _members()
    vaes[1].to("meta")
    with pytest.raises(ValueError, match="different devices"):
        fit_ensemble(vaes, _data(0.1, 0, n=8), progress=False)


def test_members_that_cannot_be_stacked_train_on_their_own_exactly_as_fit():
    """A latent without reparameterize trains each member in the same loop, bitwise as fit."""
    from manifold_vae.manifolds import LatentManifold

    class PlainCircle(Circle):
        reparameterize = LatentManifold.reparameterize

    assert not PlainCircle().reparameterizable
    data = [_data(0.1, 0, n=40), _data(0.1, 1, n=40)]
    options = dict(epochs=3, batch_size=16, progress=False, input_noise=0.01)
    vaes = [_vae(PlainCircle(), seed=s) for s in range(2)]
    singles = [_vae(PlainCircle(), seed=s) for s in range(2)]
    histories = fit_ensemble(vaes, data, seeds=[5, 6], **options)
    alone = [fit(v, x, seed=s, **options) for v, x, s in zip(singles, data, (5, 6), strict=True)]
    for a, b in zip(vaes, singles, strict=True):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    assert [h.as_dict() for h in histories] == [h.as_dict() for h in alone]
    assert not any(v.training for v in vaes)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_when_unavailable_raises():
    with pytest.raises(ValueError, match=r"device='cuda'.*is_available\(\) is False"):
        fit_ensemble(_members(), _data(0.1, 0, n=8), device="cuda", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("latent", [Euclidean(2), Circle()], ids=repr)
def test_ensemble_on_cuda_equals_fit_on_cuda(latent):
    data = [_data(0.1, 1), _data(1.0, 2)]
    vaes = [_vae(latent, sigma, seed=s) for s, sigma in enumerate((0.1, 1.0))]
    options = {"epochs": 2, "batch_size": 64, "lr": 1e-2, "device": "cuda"}
    models, expected = _sequential(vaes, data, [0, 1], **options)
    histories = fit_ensemble(vaes, data, progress=False, **options)
    assert all(next(v.parameters()).is_cuda for v in vaes)
    _assert_same_models(vaes, models, torch.float64)
    _assert_same_histories(histories, expected, torch.float64)


# --- input noise -----------------------------------------------------------------------------
@pytest.mark.parametrize("latent", [Euclidean(2), Circle()], ids=repr)
def test_input_noise_ensemble_equals_fit(latent):
    """Input noise from each member's generator: still fit's result, also after a member stops.

    Member 2's encoder outputs nan, so its posterior is invalid in the first step and the
    others' step is retried without it: their input noise must not be drawn twice.
    """
    data = _data(0.1, 1, n=100)
    vaes = [_vae(latent, seed=s) for s in range(3)]
    with torch.no_grad():
        vaes[2].encoder.layers[-1].bias.fill_(float("nan"))
    options = {"epochs": 2, "batch_size": 32, "lr": 1e-2, "input_noise": 0.3}
    with pytest.warns(RuntimeWarning, match="invalid distribution parameters"):
        models, expected = _sequential(vaes, data, [4, 5, 6], **options)
    with pytest.warns(RuntimeWarning, match=r"member 2 .*invalid distribution parameters"):
        histories = fit_ensemble(vaes, data, seeds=[4, 5, 6], progress=False, **options)
    _assert_same_histories(histories, expected, torch.float64)
    _assert_same_models(vaes[:2], models[:2], torch.float64)  # member 2 keeps its nan
    options["input_noise"] = 0.0
    noiseless = fit(_vae(latent, seed=0), data, seed=4, progress=False, **options)
    assert noiseless.loss[0] != pytest.approx(histories[0].loss[0], rel=1e-6)  # noise is added


@pytest.mark.parametrize("input_noise", [-0.1, float("nan"), float("inf")])
def test_bad_input_noise_raises(input_noise):
    with pytest.raises(ValueError, match="input_noise"):
        fit_ensemble(_members(), _data(0.1, 0, n=8), progress=False, input_noise=input_noise)
    with pytest.raises(ValueError, match="input_noise"):
        fit(_members()[0], _data(0.1, 0, n=8), progress=False, input_noise=input_noise)
