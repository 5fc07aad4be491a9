r"""Parametric reductor maps :math:`M^{(\lambda)}: Z_1 \to Z_2` that respect the geometry.

Every map is a :class:`torch.nn.Module` from **embedded points** of the source latent manifold,
shape ``(..., source.ambient_dim)``, to embedded points of the target manifold, shape
``(copies, ..., target.ambient_dim)``, that lie on the target manifold. The leading ``copies``
dimension holds independent parameter sets (the restarts of
:func:`~manifold_vae.reductors.fit_reductor`, fitted at once as one vectorised problem);
every parameter and buffer has ``copies`` as its first dimension, and :meth:`ReductorMap.select`
extracts one copy.

The families (thesis Table 9.1, Eqs. 11.11-11.13, with the reflections of the correction to
Table 9.1 in ``NOTES.md``):

* :class:`LinearMap`: :math:`y = C p` into :math:`\mathbb R^d` (needs a target whose points are
  all of :math:`\mathbb R^d`);
* :class:`ProjectedLinearMap`: :math:`C p` projected onto the target, :math:`\pi(C p)`, with the
  protocol's projection :math:`\pi = \mathrm{to\_point} \circ \mathrm{to\_coordinates}` (circle:
  normalise; Clifford torus: normalise each factor pair to radius :math:`1/\sqrt 2`, Eq. 11.12);
* :class:`AngleIsometry`: on products of circles (angle coordinates), the isometries
  :math:`\theta \mapsto P(s \odot \theta) + \tau`: translations :math:`\tau`, reflections
  :math:`s \in \{\pm 1\}^k` and factor permutations :math:`P` (on the circle, the group O(2));
* :class:`ChartMap`: Table 9.1's chart maps :math:`\mathrm{Emb}(s\,\mathrm{atan2}(p) + \theta')`
  from a plane (:math:`\mathbb R^2` or a circle's embedding) onto a circle, with the reflection
  :math:`s = \pm 1`;
* :class:`ProjectedMLP`: a linear map plus a small tanh network, then the projection: the
  flexible reference;
* :class:`IdentityMap`: the identity between two copies of one manifold.

Each family is a :class:`ReductorMap` subclass registered in :data:`MAP_FAMILIES` under its
class attribute ``name``. What a family needs and how it is fitted is declared on the class,
never special-cased by name elsewhere: :meth:`ReductorMap.refusal` (why it cannot map a pair,
read from the manifolds' declared capabilities such as ``is_vector_space``, ``angle_product``
and ``angle_radii``), :meth:`ReductorMap.redundancy` (why fitting it would repeat another
family), ``default_lr``, ``default_rank`` (its place among the families
:func:`~manifold_vae.reductors.reduction_table` tries by default) and ``max_copies``. A user
family is one subclass plus ``MAP_FAMILIES.register``.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from distributions.angles import wrap_angle

from ..manifolds import LatentManifold
from ..registry import Registry

__all__ = [
    "MAP_FAMILIES",
    "AngleIsometry",
    "ChartMap",
    "IdentityMap",
    "LinearMap",
    "ProjectedLinearMap",
    "ProjectedMLP",
    "ReductorMap",
    "default_families",
    "make_map",
    "map_family",
    "project",
]


def project(manifold: LatentManifold, y: Tensor) -> Tensor:
    r"""Project ambient vectors ``(..., ambient_dim)`` onto ``manifold``.

    The protocol's projection ``to_point(to_coordinates(y))``.

    On the circle this normalises :math:`y`; on the Clifford torus it normalises each factor
    pair to radius :math:`1/\sqrt 2` (Eq. 11.12); on :math:`\mathbb R^d` it is the identity.
    """
    return manifold.to_point(manifold.to_coordinates(y))


def _check_copies(copies: int) -> int:
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be a positive integer, got {copies!r}")
    return copies


def _linear_weight(copies: int, d_out: int, d_in: int) -> nn.Parameter:
    """``(copies, d_out, d_in)`` independent normal entries of variance ``1 / d_in``."""
    return nn.Parameter(torch.randn(copies, d_out, d_in) / math.sqrt(d_in))


def _batched_linear(
    weight: Tensor, bias: Tensor | None, x: Tensor, per_copy: bool = False
) -> Tensor:
    """``weight (c, o, i)`` applied to ``x (..., i)`` (shared) or, if ``per_copy``, to
    ``x (c, ..., i)``: shape ``(c, ..., o)``."""
    if not per_copy:
        x = x.unsqueeze(0).expand(weight.shape[0], *x.shape)
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    out = torch.bmm(flat, weight.transpose(1, 2))
    if bias is not None:
        out = out + bias.unsqueeze(1)
    return out.reshape(*x.shape[:-1], weight.shape[1])


class ReductorMap(nn.Module):
    """Base class of the map families: ``copies`` parametric maps from source to target points.

    A family is a subclass that implements :meth:`_map` and declares, as class attributes and
    class methods, everything the fitting code needs to know about it:

    * ``name``: its key in :data:`MAP_FAMILIES`;
    * :meth:`refusal`: why it cannot map a pair of latent manifolds (read from their declared
      capabilities), checked by the constructor;
    * :meth:`redundancy`: why fitting it on a pair would only repeat another family (the
      reduction table then skips it);
    * ``default_lr``: Adam's learning rate when :func:`~manifold_vae.reductors.fit_reductor`
      is given none;
    * ``default_rank``: its place among the families
      :func:`~manifold_vae.reductors.reduction_table` tries by default (``None``: only when
      asked for);
    * ``max_copies``: the most parameter sets worth fitting (``None``: one per restart).

    Parameters
    ----------
    source, target : LatentManifold
        The latent manifolds of the source and target models.
    copies : int
        Number of independent parameter sets.

    Raises
    ------
    ValueError
        If ``copies`` is not a positive integer, or the family refuses the pair
        (:meth:`refusal`).
    """

    #: The family's name, its key in :data:`MAP_FAMILIES`.
    name: ClassVar[str] = ""
    #: Adam's default learning rate for this family.
    default_lr: ClassVar[float] = 0.01
    #: Position among the default families of the reduction table; ``None``: not a default.
    default_rank: ClassVar[int | None] = None
    #: The most parameter sets worth fitting (``None``: no limit).
    max_copies: ClassVar[int | None] = None

    def __init__(self, source: LatentManifold, target: LatentManifold, copies: int = 1) -> None:
        reason = self.refusal(source, target)
        if reason:
            raise ValueError(reason)
        super().__init__()
        self.source = source
        self.target = target
        self.copies = _check_copies(copies)

    @classmethod
    def refusal(cls, source: LatentManifold, target: LatentManifold) -> str:
        """Why this family cannot map ``source`` into ``target``; ``""`` when it can.

        Read from the manifolds' declared capabilities (``is_vector_space``,
        ``angle_product``, ``angle_radii``, ...), never from their classes. The default
        refuses nothing.
        """
        return ""

    @classmethod
    def supports(cls, source: LatentManifold, target: LatentManifold) -> bool:
        """Whether this family maps ``source`` into ``target`` (:meth:`refusal` is empty)."""
        return not cls.refusal(source, target)

    @classmethod
    def redundancy(cls, source: LatentManifold, target: LatentManifold) -> str:
        """Why fitting this family on the pair would repeat another family; ``""`` if not.

        :func:`~manifold_vae.reductors.reduction_table` skips a redundant family, with this
        reason. The default is never redundant.
        """
        return ""

    def forward(self, point: Tensor) -> Tensor:
        """Source points ``(..., source.ambient_dim)`` to ``(copies, ..., target.ambient_dim)``."""
        if point.shape[-1:] != (self.source.ambient_dim,):
            raise ValueError(
                f"point must have shape (..., {self.source.ambient_dim}) (source points), got "
                f"{tuple(point.shape)}"
            )
        return self._map(point)

    def _map(self, point: Tensor) -> Tensor:
        raise NotImplementedError

    def select(self, index: int) -> ReductorMap:
        """A copy of this map holding only parameter set ``index`` (``copies == 1``)."""
        if not 0 <= index < self.copies:
            raise ValueError(f"index must lie in [0, {self.copies}), got {index!r}")
        new = copy.deepcopy(self)
        with torch.no_grad():
            for module in new.modules():
                for key, p in list(module.named_parameters(recurse=False)):
                    setattr(module, key, nn.Parameter(p[index : index + 1].clone()))
                for key, b in list(module.named_buffers(recurse=False)):
                    module._buffers[key] = b[index : index + 1].clone()
        new.copies = 1
        return new

    def extra_repr(self) -> str:
        return f"{self.source!r} -> {self.target!r}, copies={self.copies}"


def _check_family(entry: object) -> None:
    """Refuse an entry that is not a :class:`ReductorMap` subclass, or declares a
    ``default_rank`` or ``max_copies`` that is not an integer (or ``None``)."""
    if not (isinstance(entry, type) and issubclass(entry, ReductorMap)):
        raise ValueError(f"a map family must be a subclass of ReductorMap, got {entry!r}")
    for attribute in ("default_rank", "max_copies"):
        value = getattr(entry, attribute)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{entry.__name__}.{attribute} must be an int or None, got {value!r}")
    if entry.max_copies is not None and entry.max_copies < 1:
        raise ValueError(f"{entry.__name__}.max_copies must be >= 1, got {entry.max_copies!r}")


#: The map families by name: :class:`ReductorMap` subclasses keyed by their ``name``.
MAP_FAMILIES: Registry[type[ReductorMap]] = Registry("map family", check=_check_family)


def map_family(family: str) -> type[ReductorMap]:
    """The registered map family ``family``.

    Raises
    ------
    ValueError
        If no family of that name is registered (the message lists the registered ones).
    """
    if family not in MAP_FAMILIES:
        raise ValueError(
            f"family must be one of the registered map families {list(MAP_FAMILIES.names())}, "
            f"got {family!r}"
        )
    return MAP_FAMILIES[family]


def make_map(
    family: str, source: LatentManifold, target: LatentManifold, copies: int = 1
) -> ReductorMap:
    r"""A map of ``family`` from ``source`` to ``target`` with ``copies`` parameter sets.

    Raises
    ------
    ValueError
        If the family is not registered or refuses the pair (e.g. ``'isometry'`` between a
        circle and :math:`\mathbb R^2`).
    """
    return map_family(family)(source, target, copies)


def default_families() -> tuple[str, ...]:
    """The families with a ``default_rank``, ordered by it (ties by name).

    Asked at call time, so a registered user family that declares a rank is included.
    """
    ranked = sorted(
        (cls.default_rank, name)
        for name, cls in MAP_FAMILIES.items()
        if cls.default_rank is not None
    )
    return tuple(name for _, name in ranked)


@MAP_FAMILIES.register
class IdentityMap(ReductorMap):
    """The identity between two copies of one manifold (no parameters)."""

    name = "identity"
    default_lr = 0.0
    max_copies = 1

    @classmethod
    def refusal(cls, source: LatentManifold, target: LatentManifold) -> str:
        """Refuses two different manifolds."""
        if source != target:
            return f"identity needs the same source and target, got {source!r}, {target!r}"
        return ""

    def _map(self, point: Tensor) -> Tensor:
        return point.unsqueeze(0).expand(self.copies, *point.shape)


@MAP_FAMILIES.register
class LinearMap(ReductorMap):
    r"""The matrix map :math:`M^{(C)}(p) = C p` (Table 9.1, Eq. 11.13).

    :math:`C \in \mathbb R^{d_2 \times D_1}`, :math:`D_1` the source's ambient dimension.

    Parameters
    ----------
    source, target : LatentManifold
        The target must be a vector space (``target.is_vector_space``).
    copies : int
        Parameter sets; ``weight`` has shape ``(copies, target.ambient_dim, source.ambient_dim)``,
        initialised with independent normal entries of variance ``1 / source.ambient_dim``.
    """

    name = "linear"
    default_lr = 0.05
    default_rank = 0

    def __init__(self, source: LatentManifold, target: LatentManifold, copies: int = 1) -> None:
        super().__init__(source, target, copies)
        self.weight = _linear_weight(copies, target.ambient_dim, source.ambient_dim)

    @classmethod
    def refusal(cls, source: LatentManifold, target: LatentManifold) -> str:
        """Refuses a target that is not a vector space."""
        if not target.is_vector_space:
            return (
                f"the linear family maps into R^d, but the target {target!r} is not a vector "
                "space; use 'projected-linear'"
            )
        return ""

    def _map(self, point: Tensor) -> Tensor:
        return _batched_linear(self.weight.to(point.dtype), None, point)


@MAP_FAMILIES.register
class ProjectedLinearMap(LinearMap):
    r""":math:`M^{(C)}(p) = \pi(C p)`: matrix map then projection onto the target (Eq. 11.12).

    Parameters
    ----------
    source, target : LatentManifold
        Any pair; the projection :func:`project` is the target's protocol
        ``to_point(to_coordinates(.))``.
    copies : int
        Parameter sets.
    """

    name = "projected-linear"
    default_lr = 0.05
    default_rank = 1

    @classmethod
    def refusal(cls, source: LatentManifold, target: LatentManifold) -> str:
        """Refuses nothing."""
        return ""

    @classmethod
    def redundancy(cls, source: LatentManifold, target: LatentManifold) -> str:
        """Onto a vector space the projection is the identity: the linear family."""
        if target.is_vector_space:
            return "the projection onto a vector space is the identity: the same as 'linear'"
        return ""

    def _map(self, point: Tensor) -> Tensor:
        return project(self.target, super()._map(point))


@MAP_FAMILIES.register
class AngleIsometry(ReductorMap):
    r"""Isometries of a product of :math:`k` circles: :math:`\theta \mapsto P(s\theta) + \tau`.

    .. math::

        M(p) = \mathrm{to\_point}\big(\mathrm{wrap}(s_{\pi(i)}\,\theta_{\pi(i)} + \tau_i)\big)_{i},
        \qquad \theta = \mathrm{to\_coordinates}(p),

    with the translation :math:`\tau \in \mathbb R^k` learned, and the reflections
    :math:`s \in \{\pm 1\}^k` and the factor permutation :math:`\pi` fixed per copy (discrete:
    :func:`~manifold_vae.reductors.fit_reductor` covers them by its restarts). On the circle
    these are the rotations and reflections, the group O(2); on the torus the translations,
    reflections and the factor swap.

    Parameters
    ----------
    source, target : LatentManifold
        Products of the same number of circles: every coordinate an angle
        (``angle_product``), as many angles (``angle_radii``) in both.
    copies : int
        Parameter sets. Copy ``c`` gets the ``c``-th discrete element (cycling through all
        :math:`2^k k!` sign-permutation pairs) and a translation uniform in :math:`[-\pi, \pi)^k`.
    """

    name = "isometry"
    default_lr = 0.05
    default_rank = 2

    def __init__(self, source: LatentManifold, target: LatentManifold, copies: int = 1) -> None:
        super().__init__(source, target, copies)
        k = source.dim
        elements = [
            (signs, perm)
            for perm in itertools.permutations(range(k))
            for signs in itertools.product((1.0, -1.0), repeat=k)
        ]
        chosen = [elements[c % len(elements)] for c in range(copies)]
        self.register_buffer("signs", torch.tensor([s for s, _ in chosen]))
        self.register_buffer("permutation", torch.tensor([p for _, p in chosen], dtype=torch.long))
        self.shift = nn.Parameter((torch.rand(copies, k) * 2.0 - 1.0) * math.pi)

    @classmethod
    def refusal(cls, source: LatentManifold, target: LatentManifold) -> str:
        """Refuses unless both are products of circles, as many in each."""
        if not (
            source.angle_product
            and target.angle_product
            and len(source.angle_radii) == len(target.angle_radii)
        ):
            return (
                "the isometry family needs source and target to be products of the same number "
                f"of circles, got {source!r} and {target!r}"
            )
        return ""

    def _map(self, point: Tensor) -> Tensor:
        theta = self.source.to_coordinates(point)
        batch = theta.shape[:-1]
        view = (self.copies, *([1] * len(batch)), theta.shape[-1])
        index = self.permutation.view(view).expand(self.copies, *theta.shape)
        permuted = torch.gather(theta.unsqueeze(0).expand(self.copies, *theta.shape), -1, index)
        signs = self.signs.to(theta.dtype).view(view)
        out = wrap_angle(signs * permuted + self.shift.to(theta.dtype).view(view))
        return self.target.to_point(out)


@MAP_FAMILIES.register
class ChartMap(ReductorMap):
    r"""Table 9.1's chart maps onto a circle: :math:`\mathrm{Emb}(s\,\mathrm{atan2}(p) + \theta')`.

    .. math::

        M(p) = \mathrm{to\_point}\big(\mathrm{wrap}(s\,\mathrm{atan2}(p_2, p_1) + \theta')\big),

    the angle of the source point in its plane, reflected by :math:`s = \pm 1` (fixed per copy,
    alternating) and rotated by :math:`\theta'` (learned). Table 9.1 has no reflection; the
    maps :math:`M_{R^2;S^1}`, :math:`M_{R^2;\Phi}`, :math:`M_{S^1;\Phi}` and :math:`M_{\Phi;S^1}`
    are the copies with :math:`s = 1`.

    Parameters
    ----------
    source : LatentManifold
        Embedded in a plane (``ambient_dim == 2``): :math:`\mathbb R^2` or a circle.
    target : LatentManifold
        A circle: one coordinate, an angle (``angle_product``, one ``angle_radii``).
    copies : int
        Parameter sets.
    """

    name = "chart"
    default_lr = 0.05
    default_rank = 3

    def __init__(self, source: LatentManifold, target: LatentManifold, copies: int = 1) -> None:
        super().__init__(source, target, copies)
        signs = [1.0 if c % 2 == 0 else -1.0 for c in range(copies)]
        self.register_buffer("signs", torch.tensor(signs))
        self.shift = nn.Parameter((torch.rand(copies) * 2.0 - 1.0) * math.pi)

    @classmethod
    def refusal(cls, source: LatentManifold, target: LatentManifold) -> str:
        """Refuses unless the source lies in a plane and the target is a circle."""
        if source.ambient_dim != 2 or not (target.angle_product and len(target.angle_radii) == 1):
            return (
                "the chart family maps a plane (source ambient_dim 2) onto a circle (target "
                f"dim 1), got {source!r} and {target!r}"
            )
        return ""

    def _map(self, point: Tensor) -> Tensor:
        angle = torch.atan2(point[..., 1], point[..., 0])
        view = (self.copies, *([1] * angle.dim()))
        signs = self.signs.to(angle.dtype).view(view)
        out = wrap_angle(signs * angle.unsqueeze(0) + self.shift.to(angle.dtype).view(view))
        return self.target.to_point(out.unsqueeze(-1))


@MAP_FAMILIES.register
class ProjectedMLP(ReductorMap):
    r"""A linear map plus a small network, then the projection onto the target.

    .. math::

        M(p) = \pi\big(C p + W_2 \tanh(W_1 p + b_1) + b_2\big),

    the flexible reference against which the simple families are judged. The linear part is
    initialised as in :class:`ProjectedLinearMap` and the network's output layer near zero, so
    that the fit starts close to the projected-linear family and bends away from it where that
    lowers Delta (e.g. a learned circle that is traversed at a non-uniform speed).

    Parameters
    ----------
    source, target : LatentManifold
        Any pair.
    copies : int
        Parameter sets.
    hidden : int
        Hidden units (one hidden layer of tanh units).
    """

    name = "mlp"
    default_lr = 0.02
    default_rank = 4

    def __init__(
        self, source: LatentManifold, target: LatentManifold, copies: int = 1, hidden: int = 32
    ) -> None:
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        super().__init__(source, target, copies)
        d_in, d_out = source.ambient_dim, target.ambient_dim
        self.weight = _linear_weight(copies, d_out, d_in)
        self.w1 = nn.Parameter(torch.randn(copies, hidden, d_in) * 2.0 / math.sqrt(d_in))
        self.b1 = nn.Parameter(torch.randn(copies, hidden))
        self.w2 = nn.Parameter(torch.randn(copies, d_out, hidden) * 0.01 / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(copies, d_out))

    def _map(self, point: Tensor) -> Tensor:
        dtype = point.dtype
        h = torch.tanh(_batched_linear(self.w1.to(dtype), self.b1.to(dtype), point))
        out = _batched_linear(self.w2.to(dtype), self.b2.to(dtype), h, per_copy=True)
        return project(self.target, out + _batched_linear(self.weight.to(dtype), None, point))
