"""Checkpoints: exact round trips, atomic writes, clear errors for bad files, the header."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import manifold_vae
from manifold_vae import checkpoint
from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import Bernoulli, Gaussian, GaussianLearnedScale
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean
from manifold_vae.vae import VAE

from .registry import MANIFOLDS, ids

LIKELIHOODS = {
    "gaussian": lambda: Gaussian(0.3),
    "learned-scale": lambda: GaussianLearnedScale(0.5),
    "learned-shared-scale": lambda: GaussianLearnedScale(0.5, shared=True),
    "bernoulli": Bernoulli,
}

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _data(likelihood, n: int = 12, dtype=torch.float32) -> torch.Tensor:
    x = sinusoids(n=n, noise=0.1, seed=2, dtype=dtype).data
    return torch.sigmoid(2 * x) if isinstance(likelihood, Bernoulli) else x


def _vae(latent, likelihood, seed: int = 0, **kwargs) -> VAE:
    torch.manual_seed(seed)
    vae = VAE(latent, kwargs.pop("data_shape", (25,)), likelihood, **kwargs)
    with torch.no_grad():  # parameters no fresh model would have
        for p in vae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return vae


def _assert_same_model(a: VAE, b: VAE, x: torch.Tensor) -> None:
    assert type(a.latent) is type(b.latent) and a.latent == b.latent
    assert a.likelihood.spec() == b.likelihood.spec()
    assert a.data_shape == b.data_shape and (a.hidden, a.depth) == (b.hidden, b.depth)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)
    for seed in (0, 1):
        torch.manual_seed(seed)
        expected = a.elbo(x, num_samples=2)
        torch.manual_seed(seed)
        got = b.elbo(x, num_samples=2)
        for e, g in zip(expected, got, strict=True):
            assert torch.equal(e, g)


# --- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("m", MANIFOLDS, ids=ids(MANIFOLDS))
@pytest.mark.parametrize("likelihood", list(LIKELIHOODS.values()), ids=list(LIKELIHOODS))
def test_round_trip_reproduces_the_elbo_exactly(tmp_path, m, likelihood):
    vae = _vae(m, likelihood())
    path = tmp_path / "model.pt"
    vae.save(path)
    loaded = VAE.load(path)
    _assert_same_model(vae, loaded, _data(vae.likelihood))


def test_learned_scale_values_survive_the_round_trip(tmp_path):
    vae = _vae(Circle(), GaussianLearnedScale(0.5))
    with torch.no_grad():
        vae.likelihood.log_sigma.copy_(torch.linspace(-2, 1, 25))
    vae.save(tmp_path / "model.pt")
    loaded = VAE.load(tmp_path / "model.pt")
    torch.testing.assert_close(loaded.likelihood.sigma, torch.linspace(-2, 1, 25).exp())


@pytest.mark.parametrize("m", [Euclidean(2), Circle(), CliffordTorus()], ids=repr)
def test_round_trip_of_a_float64_model_with_non_default_networks(tmp_path, m):
    vae = _vae(m, Gaussian(0.2), hidden=7, depth=3, activation="tanh").double()
    vae.save(tmp_path / "model.pt")
    loaded = VAE.load(tmp_path / "model.pt")
    assert next(loaded.parameters()).dtype == torch.float64
    assert (loaded.hidden, loaded.depth, loaded.activation) == (7, 3, "tanh")
    _assert_same_model(vae, loaded, _data(vae.likelihood, dtype=torch.float64))


def _conv_encoder(m) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ELU(), nn.Flatten(), nn.Linear(3 * 36, m.posterior_params)
    )


def _conv_decoder(m) -> nn.Module:
    return nn.Sequential(
        nn.Linear(m.ambient_dim, 36), nn.Unflatten(1, (1, 6, 6)), nn.Conv2d(1, 1, 3, padding=1)
    )


def _conv_vae(m) -> VAE:
    return _vae(
        m, Bernoulli(), data_shape=(1, 6, 6), encoder=_conv_encoder(m), decoder=_conv_decoder(m)
    )


@pytest.mark.parametrize("m", [Euclidean(2), Circle(), CliffordTorus()], ids=repr)
def test_round_trip_with_custom_networks(tmp_path, m):
    vae = _conv_vae(m)
    vae.save(tmp_path / "model.pt")
    torch.manual_seed(5)  # fresh modules: their initial weights are replaced by the saved ones
    loaded = VAE.load(tmp_path / "model.pt", encoder=_conv_encoder(m), decoder=_conv_decoder(m))
    assert isinstance(loaded.encoder[0], nn.Conv2d) and isinstance(loaded.decoder[1], nn.Unflatten)
    _assert_same_model(
        vae, loaded, torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    )


def test_load_builds_the_class_it_is_called_on(tmp_path):
    class Subclass(VAE):
        pass

    vae = _vae(Circle(), Gaussian())
    vae.save(tmp_path / "model.pt")
    loaded = Subclass.load(tmp_path / "model.pt")
    assert type(loaded) is Subclass
    _assert_same_model(vae, loaded, _data(vae.likelihood))


def test_load_with_map_location(tmp_path):
    vae = _vae(Circle(), Gaussian())
    vae.save(str(tmp_path / "model.pt"))  # str paths too
    loaded = VAE.load(str(tmp_path / "model.pt"), map_location="cpu")
    assert next(loaded.parameters()).device.type == "cpu"


def test_save_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "model.pt"
    _vae(Circle(), Gaussian()).save(path)
    assert path.is_file()


# --- the header ------------------------------------------------------------------------------
def test_header_holds_versions_and_specs(tmp_path):
    vae = _vae(CliffordTorus(), GaussianLearnedScale(0.4), hidden=9)
    vae.save(tmp_path / "model.pt")
    header = torch.load(tmp_path / "model.pt", weights_only=True)
    assert header["format"] == checkpoint.FORMAT
    assert header["format_version"] == checkpoint.FORMAT_VERSION
    assert header["package_version"] == manifold_vae.__version__
    assert header["manifold"] == {"name": "clifford-torus", "kwargs": {}}
    assert header["likelihood"] == {
        "name": "gaussian-learned",
        "kwargs": {"init_sigma": 0.4, "shared": False},
    }
    assert header["data_shape"] == [25] and header["hidden"] == 9 and header["dtype"] == "float32"
    assert header["encoder"] is None and header["decoder"] is None


# --- atomic writes ---------------------------------------------------------------------------
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=repr)
def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, error):
    path = tmp_path / "model.pt"
    old = _vae(Circle(), Gaussian(), seed=0)
    old.save(path)
    content = path.read_bytes()

    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # a complete file is written to the temporary...
        f.write(b"garbage")
        raise error  # ...and the process fails before the rename

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(type(error)):
        _vae(Circle(), Gaussian(), seed=1).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == content
    assert os.listdir(tmp_path) == ["model.pt"], "temporary files were left behind"
    _assert_same_model(old, VAE.load(path), _data(old.likelihood))


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        _vae(Circle(), Gaussian()).save(tmp_path / "model.pt")
    assert os.listdir(tmp_path) == []


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "model.pt"
    _vae(Circle(), Gaussian(), seed=0).save(path)
    new = _vae(Circle(), Gaussian(), seed=1)
    new.save(path)
    _assert_same_model(new, VAE.load(path), _data(new.likelihood))
    assert os.listdir(tmp_path) == ["model.pt"]


# --- bad files -------------------------------------------------------------------------------
def _resave(header, path):
    """Write an edited header as a consistent file: its digest recomputed (format 3), or
    dropped for the older formats, which had none."""
    if header.get("format_version", 0) >= checkpoint.DIGEST_SINCE and "state_dict" in header:
        header["digest"] = checkpoint.payload_digest(header)
    else:
        header.pop("digest", None)
    torch.save(header, path)


def _write_random_bytes(path):
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())


def _write_truncated(path):
    _vae(Circle(), Gaussian()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_empty(path):
    path.write_bytes(b"")


def _write_foreign_dict(path):
    torch.save({"a": 1}, path)


def _write_foreign_tensor(path):
    torch.save(torch.zeros(3), path)


def _write_state_dict_only(path):
    torch.save(_vae(Circle(), Gaussian()).state_dict(), path)


def _write_damaged_header(path):
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    del header["state_dict"]
    _resave(header, path)


def _write_wrong_weights(path):
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    header["manifold"] = CliffordTorus().spec()  # weights of the wrong shapes
    _resave(header, path)


def _write_unknown_manifold(path):
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    header["manifold"] = {"name": "klein-bottle", "kwargs": {}}
    _resave(header, path)


def _write_newer_format(path):
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    header["format_version"] = checkpoint.FORMAT_VERSION + 1
    _resave(header, path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (_write_random_bytes, "is not a readable manifold-vae checkpoint"),
        (_write_truncated, "is not a readable manifold-vae checkpoint"),
        (_write_empty, "is not a readable manifold-vae checkpoint"),
        (_write_foreign_dict, "is not a manifold-vae checkpoint"),
        (_write_foreign_tensor, "is not a manifold-vae checkpoint"),
        (_write_state_dict_only, "is not a manifold-vae checkpoint"),
        (_write_damaged_header, "is a damaged manifold-vae checkpoint"),
        (_write_wrong_weights, "is a damaged manifold-vae checkpoint"),
        (_write_unknown_manifold, "unknown manifold spec"),
        (_write_newer_format, "newer than this package's"),
    ],
    ids=lambda value: value.__name__.removeprefix("_write_") if callable(value) else "",
)
def test_bad_files_raise_clear_value_errors(tmp_path, write, message):
    path = tmp_path / "bad.pt"
    torch.manual_seed(0)
    write(path)
    with pytest.raises(ValueError, match=message) as info:
        VAE.load(path)
    assert "bad.pt" in str(info.value) or "unknown manifold" in str(info.value)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*missing\.pt"):
        VAE.load(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        VAE.load(tmp_path)  # a folder is not a checkpoint


# --- no code is ever unpickled ---------------------------------------------------------------
class _CreatesAFile:
    """Unpickling this opens (creates) ``path``: code that a checkpoint must never run."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_the_payload_runs_when_unpickled(tmp_path):
    """The crafted payload below is live: plain unpickling creates its file."""
    import pickle

    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_CreatesAFile(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("where", ["state_dict", "header", "top"])
def test_a_crafted_pickle_raises_without_running(tmp_path, where):
    marker = tmp_path / "ran"
    path = tmp_path / "model.pt"
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    if where == "state_dict":
        header["state_dict"]["encoder.layers.0.weight"] = _CreatesAFile(marker)
    elif where == "header":
        header["likelihood"] = _CreatesAFile(marker)
    else:
        header = _CreatesAFile(marker)
    torch.save(header, path)
    with pytest.raises(ValueError, match="is not a readable manifold-vae checkpoint"):
        VAE.load(path)
    assert not marker.exists(), "loading ran code from the checkpoint"


def _old_format(path, m, payload=None) -> VAE:
    """A format-1 checkpoint of a custom-network model, its networks as pickled modules."""
    import io

    vae = _conv_vae(m)
    vae.save(path)
    header = torch.load(path, weights_only=True)
    header["format_version"] = 1
    for name in ("encoder", "decoder"):
        buffer = io.BytesIO()
        torch.save(payload if payload is not None else getattr(vae, name), buffer)
        header[name] = buffer.getvalue()
    _resave(header, path)
    return vae


def test_an_old_checkpoint_with_pickled_networks_is_refused(tmp_path):
    marker = tmp_path / "ran"
    _old_format(tmp_path / "old.pt", Circle(), payload=_CreatesAFile(marker))
    with pytest.raises(ValueError, match=r"as pickled code .* never unpickles") as info:
        VAE.load(tmp_path / "old.pt")
    assert "encoder=..., decoder=..." in str(info.value)
    assert not marker.exists()


def test_an_old_checkpoint_loads_with_the_networks_passed(tmp_path):
    m = Circle()
    old = _old_format(tmp_path / "old.pt", m)
    loaded = VAE.load(tmp_path / "old.pt", encoder=_conv_encoder(m), decoder=_conv_decoder(m))
    _assert_same_model(old, loaded, torch.rand(5, 1, 6, 6))


def test_an_old_checkpoint_of_default_networks_loads(tmp_path):
    path = tmp_path / "old.pt"
    vae = _vae(Circle(), Gaussian(0.2))
    vae.save(path)
    header = torch.load(path, weights_only=True)
    header["format_version"] = 1
    _resave(header, path)
    _assert_same_model(vae, VAE.load(path), _data(vae.likelihood))


# --- custom networks are passed to load ------------------------------------------------------
def test_custom_networks_are_recorded_by_class_not_stored(tmp_path):
    path = tmp_path / "model.pt"
    _conv_vae(Circle()).save(path)
    header = torch.load(path, weights_only=True)
    assert header["encoder"] == header["decoder"] == "torch.nn.modules.container.Sequential"
    assert header["format_version"] == checkpoint.FORMAT_VERSION == 3


def test_loading_without_the_custom_networks_names_them(tmp_path):
    m = Circle()
    path = tmp_path / "model.pt"
    _conv_vae(m).save(path)
    with pytest.raises(ValueError, match=r"custom encoder \(torch.nn.*Sequential\).*decoder"):
        VAE.load(path)
    with pytest.raises(ValueError, match=r"custom decoder .*VAE.load\(path, decoder=\.\.\.\)"):
        VAE.load(path, encoder=_conv_encoder(m))


def test_only_the_custom_network_is_needed(tmp_path):
    m = Circle()
    path = tmp_path / "model.pt"
    vae = _vae(m, Gaussian(0.3), encoder=nn.Sequential(nn.Linear(25, m.posterior_params)))
    assert vae.custom_networks == ("encoder",)
    vae.save(path)
    assert torch.load(path, weights_only=True)["decoder"] is None
    loaded = VAE.load(path, encoder=nn.Sequential(nn.Linear(25, m.posterior_params)))
    assert loaded.custom_networks == ("encoder",)
    _assert_same_model(vae, loaded, _data(vae.likelihood))


@pytest.mark.parametrize(
    ("encoder", "message"),
    [
        (lambda m: nn.Sequential(nn.Linear(36, m.posterior_params)), "does not fit the encoder"),
        (lambda m: nn.Linear(36, m.posterior_params), "Missing key"),
        (lambda m: "a network", "encoder must be an nn.Module"),
    ],
    ids=["shapes", "keys", "not-a-module"],
)
def test_networks_that_do_not_fit_raise_value_errors(tmp_path, encoder, message):
    m = Circle()
    path = tmp_path / "model.pt"
    _conv_vae(m).save(path)
    with pytest.raises(ValueError, match=message):
        VAE.load(path, encoder=encoder(m), decoder=_conv_decoder(m))


# --- likelihoods are looked up by name -------------------------------------------------------
def test_an_unregistered_likelihood_is_named(tmp_path):
    path = tmp_path / "model.pt"
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    header["likelihood"] = {"name": "student-t", "kwargs": {"df": 3.0}}
    _resave(header, path)
    with pytest.raises(ValueError, match="likelihood 'student-t', which is not registered"):
        VAE.load(path)


def test_checkpoint_does_not_import_the_vae():
    """The VAE imports the checkpoint module, not the other way round (no import cycle)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(checkpoint))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert "vae" not in imported and "manifold_vae.vae" not in imported
