"""Checkpoint integrity (issue 18): a digest of the payload and the zip CRC-32s are verified on
load; every bad file is one ``ValueError`` that says what is wrong and never advises loading
with ``weights_only=False``."""

from __future__ import annotations

import re
import traceback
import zipfile

import pytest
import torch

from manifold_vae import checkpoint
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle
from manifold_vae.vae import VAE

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _saved(tmp_path) -> tuple[VAE, object]:
    torch.manual_seed(0)
    vae = VAE(Circle(), (25,), Gaussian(0.3))
    path = tmp_path / "model.pt"
    vae.save(path)
    return vae, path


def _edited(tmp_path, edit) -> object:
    """A saved model's file, its header changed by ``edit(header)`` and saved again."""
    _, path = _saved(tmp_path)
    header = torch.load(path, weights_only=True)
    edit(header)
    torch.save(header, path)
    return path


def _weight_offset(path, tensor: torch.Tensor) -> int:
    """Where the bytes of ``tensor`` lie in the file (stored uncompressed by torch.save)."""
    raw = path.read_bytes()
    offset = raw.find(tensor.detach().contiguous().numpy().tobytes())
    assert offset > 0
    return offset


def _flip(path, offset: int, count: int = 16) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def _message(path) -> str:
    with pytest.raises(ValueError) as info:
        VAE.load(path)
    text = "".join(traceback.format_exception(info.value))  # chained causes included
    assert not re.search(r"weights_only\W+(set to\W+)?False", text), "advises weights_only"
    return str(info.value)


def test_flipped_bytes_inside_a_weight_are_caught(tmp_path):
    """Before issue 18 this file loaded silently, with different weights."""
    vae, path = _saved(tmp_path)
    weight = vae.encoder.state_dict()[next(iter(vae.encoder.state_dict()))]
    _flip(path, _weight_offset(path, weight) + 8)
    assert "CRC-32" in _message(path)


def test_a_consistent_rewrite_with_other_weights_fails_the_digest(tmp_path):
    """The CRC is recomputed by torch.save; only the stored digest notices."""

    def edit(header):
        name = next(iter(header["state_dict"]))
        header["state_dict"][name] = header["state_dict"][name] + 1e-3

    message = _message(_edited(tmp_path, edit))
    assert "damaged manifold-vae checkpoint" in message and "SHA-256 digest" in message


def test_a_changed_config_fails_the_digest(tmp_path):
    path = _edited(tmp_path, lambda header: header.update(likelihood=Gaussian(0.5).spec()))
    assert "SHA-256 digest" in _message(path)


def test_a_truncated_file_says_so(tmp_path):
    """Before: '[Errno 22] Invalid argument'."""
    _, path = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:-200])
    message = _message(path)
    assert "not a complete zip archive" in message and "truncated" in message
    assert "Errno" not in message


def test_random_bytes_never_suggest_weights_only(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    assert "is not a readable manifold-vae checkpoint" in _message(path)


def test_a_plain_pickle_is_refused_without_the_unsafe_advice(tmp_path):
    """A legacy (non-zip) torch.save file is refused at the archive check."""
    path = tmp_path / "model.pt"
    torch.save({"format": checkpoint.FORMAT}, path, _use_new_zipfile_serialization=False)
    assert "not a complete zip archive" in _message(path)


def test_pickled_code_is_named_without_the_unsafe_advice(tmp_path):
    # a zipfile.ZipInfo: an object that weights_only refuses to unpickle
    path = _edited(tmp_path, lambda header: header.update(likelihood=zipfile.ZipInfo("x")))
    message = _message(path)
    assert "pickled object other than tensors" in message and "never unpickles" in message


def test_missing_keys_are_named(tmp_path):

    def edit(header):
        del header["hidden"], header["depth"]
        header["digest"] = checkpoint.payload_digest(header)

    path = _edited(tmp_path, edit)
    assert "lacks the keys ['hidden', 'depth']" in _message(path)


def test_a_current_file_without_its_digest_is_refused(tmp_path):
    path = _edited(tmp_path, lambda header: header.pop("digest"))
    assert "lacks the keys ['digest']" in _message(path)


def test_a_format_2_file_without_digest_loads(tmp_path):
    """Documented: files written before digests load after the CRC check."""
    vae, path = _saved(tmp_path)
    header = torch.load(path, weights_only=True)
    header["format_version"] = 2
    del header["digest"]
    torch.save(header, path)
    loaded = VAE.load(path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(vae.state_dict().values(), loaded.state_dict().values(), strict=True)
    )
    weight = next(iter(vae.decoder.state_dict().values()))
    _flip(path, _weight_offset(path, weight))
    assert "CRC-32" in _message(path)


def test_the_digest_is_stored_and_reproducible(tmp_path):
    vae, path = _saved(tmp_path)
    header = torch.load(path, weights_only=True)
    assert header["format_version"] == checkpoint.FORMAT_VERSION == 3
    assert header["digest"] == checkpoint.payload_digest(header)
    assert len(header["digest"]) == 64
    vae.save(tmp_path / "again.pt")
    assert torch.load(tmp_path / "again.pt", weights_only=True)["digest"] == header["digest"]


def test_loading_leaves_the_global_random_state_alone(tmp_path):
    _, path = _saved(tmp_path)
    state = torch.get_rng_state()
    VAE.load(path)
    assert torch.equal(torch.get_rng_state(), state)


def test_payload_digest_refuses_a_state_dict_of_non_tensors():
    with pytest.raises(ValueError, match="state_dict entry 'w' is a str, not a tensor"):
        checkpoint.payload_digest({"state_dict": {"w": "text"}})
