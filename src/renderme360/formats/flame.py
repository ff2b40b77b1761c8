"""A FLAME model ``.pkl`` read without chumpy or pickle's trust, and FLAME's skinning in numpy.

The published FLAME 2020/2023 ``.pkl`` files are Python 2 pickles of a dict whose arrays are
partly ``chumpy.ch.Ch`` objects (``shapedirs``, sometimes ``v_template``) and whose
``J_regressor`` is a ``scipy.sparse`` CSC matrix. :func:`load_flame_model` unpickles them with a
restricted unpickler: numpy array reconstruction, ``chumpy.ch.Ch`` and ``scipy.sparse`` CSC
matrices (both replaced by inert stand-ins that only keep their pickled state, then turned into
numpy arrays) and a few builtin containers. Any other global (``os.system``, a class of some
other package) is refused before it is called. :func:`pose` re-poses the model (linear blend
skinning, translation added after skinning, as FLAME and the RenderMe360 fits do).
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError

#: Expression directions start at this column of ``shapedirs`` (FLAME: 300 shape + 100 expr).
NUM_SHAPE = 300
#: Largest model file read (FLAME 2020 is ~90 MB) and largest array built from it.
MAX_FILE_BYTES = 1 << 30
_MAX_DENSE = 50_000_000


class _Stub:
    """Inert stand-in for a chumpy array or a scipy sparse matrix: keeps the pickled state."""

    kind = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        obj = object.__new__(cls)
        obj.state = None
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyStub(_Stub):
    kind = "chumpy"


class _CscStub(_Stub):
    kind = "csc"


def _latin1(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` restricted to the latin-1 text Python 3 writes bytes as."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("it calls _codecs.encode with other arguments")
    return text.encode("latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    import copyreg
    import importlib

    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module("numpy.core.multiarray")
    # what protocol-2 pickles name; private, so typeshed's copyreg stub leaves it out
    reconstructor = copyreg._reconstructor  # type: ignore[attr-defined]
    allowed: dict[tuple[str, str], Any] = {
        ("copy_reg", "_reconstructor"): reconstructor,
        ("copyreg", "_reconstructor"): reconstructor,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        ("__builtin__", "set"): set,
        ("builtins", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
        ("builtins", "frozenset"): frozenset,
        ("chumpy.ch", "Ch"): _ChumpyStub,
        ("_codecs", "encode"): _latin1,  # how Python 3 writes bytes in protocol 2
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "ndarray")] = np.ndarray
        allowed[(mod, "dtype")] = np.dtype
    for mod in ("scipy.sparse.csc", "scipy.sparse._csc"):
        allowed[(mod, "csc_matrix")] = _CscStub
    return allowed


class _Restricted(pickle.Unpickler):
    """Resolves only the globals of :func:`_allowed`; anything else raises UnpicklingError."""

    def __init__(self, fh: Any) -> None:
        super().__init__(fh, encoding="latin1")  # Python 2 pickles: str arrays as bytes
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"it references {module}.{name}"[:200])
        return found


@dataclass(frozen=True)
class FlameModel:
    """A FLAME-like model as numpy arrays (float64; ``parents[0] == -1``)."""

    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, NUM_SHAPE + E): shape then expression directions
    posedirs: np.ndarray  # (V, 3, 9 * (J - 1))
    J_regressor: np.ndarray  # (J, V)
    weights: np.ndarray  # (V, J)
    parents: np.ndarray  # (J,) int
    faces: np.ndarray  # (F, 3) int

    @property
    def num_expression(self) -> int:
        return int(self.shapedirs.shape[2]) - NUM_SHAPE


def load_flame_model(path: str | os.PathLike[str]) -> FlameModel:
    """Read a FLAME ``.pkl`` (restricted unpickler); UsageError with one line when refused."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise UsageError(f"FLAME model {p}: not a regular file")
        if size > MAX_FILE_BYTES:
            raise UsageError(f"FLAME model {p}: {size} bytes, more than a FLAME model holds")
        data = p.read_bytes()
    except OSError as exc:
        raise UsageError(f"FLAME model {p}: cannot read ({exc.strerror or exc})") from None
    try:
        obj = _Restricted(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise UsageError(
            f"FLAME model {p}: refused: {exc} (only numpy arrays, chumpy arrays and scipy "
            "sparse matrices are read)"
        ) from None
    except Exception as exc:  # a malformed pickle: any error of the (restricted) machinery
        raise UsageError(f"FLAME model {p}: not a readable pickle ({type(exc).__name__})") from None
    return flame_model_from_dict(obj, f"FLAME model {p}")


def flame_model_from_dict(obj: Any, what: str = "FLAME model") -> FlameModel:
    """A :class:`FlameModel` of FLAME's pickled dict (arrays checked: shapes, finite values)."""
    try:
        return _model(obj)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise UsageError(f"{what}: not a FLAME model ({exc})"[:300]) from None


def _array(value: Any, name: str) -> np.ndarray:
    """A numpy array of ``value`` (chumpy stand-in: its ``x``; CSC stand-in: densified)."""
    if isinstance(value, _ChumpyStub):
        state = value.state if isinstance(value.state, dict) else {}
        value = state.get("x", state.get("r"))
    elif isinstance(value, _CscStub):
        return _dense_csc(value.state, name)
    if not isinstance(value, np.ndarray) or value.dtype.hasobject:
        raise ValueError(f"{name} is not a numeric array")
    return value


def _dense_csc(state: Any, name: str) -> np.ndarray:
    if not isinstance(state, dict):
        raise ValueError(f"{name}: sparse matrix without its arrays")
    given = state["_shape"] if "_shape" in state else state.get("shape", ())
    shape = tuple(int(s) for s in given)
    data, indices, indptr = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
    if len(shape) != 2 or min(shape) < 0 or shape[0] * shape[1] > _MAX_DENSE:
        raise ValueError(f"{name}: sparse shape {shape} refused")
    rows, cols = shape
    if indptr.shape != (cols + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise ValueError(f"{name}: sparse index pointer does not match shape {shape}")
    n = int(indptr[-1])
    if data.shape != (n,) or indices.shape != (n,) or np.any((indices < 0) | (indices >= rows)):
        raise ValueError(f"{name}: sparse indices do not match shape {shape}")
    out = np.zeros(shape, dtype=np.float64)
    np.add.at(out, (indices, np.repeat(np.arange(cols), np.diff(indptr))), data)
    return out


def _model(obj: Any) -> FlameModel:
    if not isinstance(obj, dict):
        raise ValueError("the pickle does not hold a dict")
    arr = {k: _array(obj[k], k) for k in ("v_template", "shapedirs", "posedirs", "J_regressor",
                                          "weights", "kintree_table", "f")}  # fmt: skip
    v = np.asarray(arr["v_template"], dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or not 0 < len(v) <= 100_000:
        raise ValueError(f"v_template has shape {v.shape}")
    nv = len(v)
    kin = np.asarray(arr["kintree_table"]).astype(np.int64)
    if kin.ndim != 2 or kin.shape[0] != 2 or not 1 <= kin.shape[1] <= 64:
        raise ValueError(f"kintree_table has shape {kin.shape}")
    nj = kin.shape[1]
    order = {int(j): i for i, j in enumerate(kin[1])}
    parents = np.array([-1] + [order.get(int(p), -2) for p in kin[0, 1:]], dtype=np.int64)
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, nj)):
        raise ValueError("kintree_table is not a tree listed parents first")
    shapedirs = np.asarray(arr["shapedirs"], dtype=np.float64)
    posedirs = np.asarray(arr["posedirs"], dtype=np.float64)
    jreg = np.asarray(arr["J_regressor"], dtype=np.float64)
    weights = np.asarray(arr["weights"], dtype=np.float64)
    faces = np.asarray(arr["f"]).astype(np.int64)
    expect = {
        "shapedirs": (shapedirs, (nv, 3)),
        "posedirs": (posedirs, (nv, 3, 9 * (nj - 1))),
        "J_regressor": (jreg, (nj, nv)),
        "weights": (weights, (nv, nj)),
    }
    for name, (a, shape) in expect.items():
        if a.shape[: len(shape)] != shape or a.ndim != (3 if name == "shapedirs" else len(shape)):
            raise ValueError(f"{name} has shape {a.shape}, expected {shape}{'...' * (a.ndim > 2)}")
    if shapedirs.shape[2] <= NUM_SHAPE:
        raise ValueError(f"shapedirs has {shapedirs.shape[2]} directions, FLAME has 300 + expr")
    if (
        faces.ndim != 2
        or faces.shape[1] != 3
        or (faces.size and (faces.min() < 0 or faces.max() >= nv))
    ):
        raise ValueError("f is not a (F, 3) array of vertex indices")
    for name, a in (("v_template", v), ("shapedirs", shapedirs), ("posedirs", posedirs),
                    ("J_regressor", jreg), ("weights", weights)):  # fmt: skip
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} holds non-finite values")
    return FlameModel(v, shapedirs, posedirs, jreg, weights, parents, faces)


def rodrigues(rotvecs: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) of axis-angle vectors (N, 3)."""
    r = np.asarray(rotvecs, dtype=np.float64).reshape(-1, 3)
    angle = np.linalg.norm(r, axis=1, keepdims=True)
    axis = r / np.where(angle > 1e-12, angle, 1.0)
    x, y, z = axis.T
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=1).reshape(-1, 3, 3)
    s, c = np.sin(angle)[:, :, None], np.cos(angle)[:, :, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def pose(
    model: FlameModel,
    shape: np.ndarray,
    expr: np.ndarray,
    joint_poses: np.ndarray,
    translation: np.ndarray,
) -> np.ndarray:
    """Vertices (V, 3) of the model with ``shape``/``expr`` coefficients (zero-padded to the
    model's counts; extra coefficients must be zero), axis-angle ``joint_poses`` (J, 3) in
    kinematic order (FLAME: global, neck, jaw, left eye, right eye) and ``translation`` added
    after skinning."""
    betas = np.zeros(model.shapedirs.shape[2])
    s, e = np.ravel(shape).astype(np.float64), np.ravel(expr).astype(np.float64)
    if len(s) > NUM_SHAPE or len(e) > model.num_expression:
        raise UsageError(
            f"{len(s)} shape / {len(e)} expression coefficients: the FLAME model has "
            f"{NUM_SHAPE} / {model.num_expression}"
        )
    betas[: len(s)] = s
    betas[NUM_SHAPE : NUM_SHAPE + len(e)] = e
    v_shaped = model.v_template + model.shapedirs @ betas
    joints = model.J_regressor @ v_shaped
    rots = rodrigues(np.asarray(joint_poses, dtype=np.float64).reshape(-1, 3))
    nj = len(model.parents)
    if len(rots) != nj:
        raise UsageError(f"{len(rots)} joint rotations for a model of {nj} joints")
    feature = (rots[1:] - np.eye(3)).ravel()
    v_posed = v_shaped + model.posedirs @ feature
    world = np.zeros((nj, 4, 4))
    for j in range(nj):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        p = model.parents[j]
        local[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0.0)
        world[j] = local if p < 0 else world[p] @ local
    world[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], joints)  # rest joints removed
    blend = np.einsum("vj,jab->vab", model.weights, world[:, :3, :])
    out = np.einsum("vab,vb->va", blend[:, :, :3], v_posed) + blend[:, :, 3]
    return out + np.ravel(translation).astype(np.float64)[:3]
