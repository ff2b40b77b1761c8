"""The one table of modalities: what each is, where an SMC keeps it, how it is written, checked
and read back. Every consumer (selection, plan, inventory, writers, verify, reports, loader,
preview, synth) reads its facts here instead of spelling its own list, and each consumer that
dispatches per modality keeps a registry keyed by :attr:`ModalitySpec.name` that
``tests/test_modalities.py`` checks against :data:`SPECS`.

Lowest layer: no numpy, no h5py (the CLI builds ``--help`` from :data:`MODALITIES`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModalitySpec:
    """One modality.

    name
        What ``--modalities`` and manifests call it; also the key of every consumer registry.
    aliases
        Other spellings ``--modalities`` accepts.
    smc_file, smc_path
        Which file of a performance holds it in the published release (``raw``, ``anno`` or
        ``both``) and its HDF5 location (documentation; ``smc/schema.py`` spells the real paths).
    per_frame, per_camera
        Whether ``--frames`` / ``--cameras`` select among its items.
    blob_kind
        The SMC reader's kind of encoded blob (``color``, ``mask``, ...), None for arrays/text.
    folder
        Its folder inside a source folder of the output (``output/layout.py`` builds paths).
    stored_ext
        True: the file extension comes from the stored bytes' magic (blobs); False: fixed names.
    reencode
        Extension written by ``--image-mode reencode`` (``jpg``/``png``), None: always copied.
    grayscale
        Decoded as one channel (masks).
    verify
        How ``verify --source`` compares it with its source: ``stored`` (the file's bytes
        against the stored blob, when copied) or ``derived`` (re-derived from the source by its
        writer and compared) or ``none``.
    loader
        Key of the loader's reader of it (``loader.performance.READERS``), None: not loaded.
    preferred
        The source role whose copy the combined layout keeps when two files hold it.
    """

    name: str
    aliases: tuple[str, ...]
    smc_file: str
    smc_path: str
    per_frame: bool
    per_camera: bool
    blob_kind: str | None
    folder: str
    stored_ext: bool
    reencode: str | None
    grayscale: bool
    verify: str
    loader: str | None
    preferred: str = "anno"

    @property
    def is_blob(self) -> bool:
        """Whether its files are stored encoded bytes (copied byte-exact by default)."""
        return self.blob_kind is not None


def _spec(
    name: str,
    folder: str | None = None,
    *,
    smc_file: str,
    smc_path: str,
    aliases: tuple[str, ...] = (),
    per_frame: bool = False,
    per_camera: bool = False,
    blob_kind: str | None = None,
    reencode: str | None = None,
    grayscale: bool = False,
    verify: str | None = None,
    loadable: bool = True,
    preferred: str = "anno",
) -> ModalitySpec:
    """A spec with the defaults that follow from it: a blob's extension comes from its bytes
    and verify compares its stored bytes; anything else is re-derived; the loader's reader is
    named after it (``loadable=False``: not loaded)."""
    return ModalitySpec(
        name=name,
        aliases=aliases,
        smc_file=smc_file,
        smc_path=smc_path,
        per_frame=per_frame,
        per_camera=per_camera,
        blob_kind=blob_kind,
        folder=folder or name,
        stored_ext=blob_kind is not None,
        reencode=reencode,
        grayscale=grayscale,
        verify=verify or ("stored" if blob_kind is not None else "derived"),
        loader=name if loadable else None,
        preferred=preferred,
    )


#: Every modality, in canonical order (planning, reports, ``--modalities`` help).
SPECS: tuple[ModalitySpec, ...] = (
    _spec("metadata", smc_file="both", smc_path="root attributes", verify="none", loadable=False),
    _spec(
        "calibration",
        aliases=("calib",),
        smc_file="anno",
        smc_path="Calibration/<cam>/{K,D,RT}",
        per_camera=True,
    ),
    _spec(
        "images",
        aliases=("image",),
        smc_file="raw",
        smc_path="Camera/<cam>/color/<frame>",
        per_frame=True,
        per_camera=True,
        blob_kind="color",
        reencode="jpg",
        preferred="raw",
    ),
    _spec(
        "masks",
        aliases=("mask",),
        smc_file="anno",
        smc_path="Camera/<cam>/mask/<frame>",
        per_frame=True,
        per_camera=True,
        blob_kind="mask",
        reencode="png",
        grayscale=True,
    ),
    _spec("audio", smc_file="raw", smc_path="Camera/00/audio/{audio,sample_rate}", preferred="raw"),
    _spec(
        "keypoints2d",
        aliases=("kp2d",),
        smc_file="anno",
        smc_path="Keypoints2d/<cam>/<frame>",
        per_frame=True,
        per_camera=True,
    ),
    _spec(
        "keypoints3d",
        aliases=("kp3d",),
        smc_file="anno",
        smc_path="Keypoints3d/<frame>",
        per_frame=True,
    ),
    _spec("flame", smc_file="anno", smc_path="FLAME/<frame>/<field>", per_frame=True),
    _spec(
        "uv",
        "uv_textures",
        aliases=("uv_textures", "uv_texture"),
        smc_file="anno",
        smc_path="UV_texture/<frame>",
        per_frame=True,
        blob_kind="uv",
        reencode="jpg",
    ),
    _spec("scan", aliases=("scan_mesh",), smc_file="anno", smc_path="Scan/{vertex,faces}"),
    _spec(
        "scan_masks",
        aliases=("scan_mask",),
        smc_file="anno",
        smc_path="ScanMask/<cam>",
        per_camera=True,
        blob_kind="scan_mask",
        grayscale=True,
        loadable=False,
    ),
)

#: Modality names in canonical order: the only tuple of them in the package.
MODALITIES: tuple[str, ...] = tuple(s.name for s in SPECS)
_BY_NAME = {s.name: s for s in SPECS}
#: ``--modalities`` spellings other than the names -> name.
ALIASES: dict[str, str] = {a: s.name for s in SPECS for a in s.aliases}
#: Blob kind -> its modality, for the modalities stored as encoded blobs.
BY_BLOB_KIND: dict[str, ModalitySpec] = {s.blob_kind: s for s in SPECS if s.blob_kind}
#: Modalities with one item per frame (``--frames`` applies) and per camera (``--cameras``).
PER_FRAME: tuple[str, ...] = tuple(s.name for s in SPECS if s.per_frame)
PER_CAMERA: tuple[str, ...] = tuple(s.name for s in SPECS if s.per_camera)
#: Blob modalities stored per camera and frame (images, masks): camera streams of frames.
STREAMS: tuple[str, ...] = tuple(
    s.name for s in SPECS if s.is_blob and s.per_camera and s.per_frame
)
#: Modalities the loader reads (``Performance.modalities`` answers among these).
LOADABLE: tuple[str, ...] = tuple(s.name for s in SPECS if s.loader is not None)


def spec(name: str) -> ModalitySpec:
    """The spec of a modality (KeyError naming the known ones for anything else)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}") from None


def blob_modality(kind: str) -> str:
    """The modality stored as blobs of ``kind`` (``color`` -> ``images``)."""
    return BY_BLOB_KIND[kind].name


def reencoded(modality: str, image_mode: str) -> bool:
    """Whether ``image_mode`` decodes and re-encodes this modality's files (images, masks and
    UV textures under ``reencode``; scan masks and everything else never)."""
    return image_mode == "reencode" and _BY_NAME[modality].reencode is not None


__all__ = [
    "ALIASES",
    "BY_BLOB_KIND",
    "LOADABLE",
    "MODALITIES",
    "PER_CAMERA",
    "PER_FRAME",
    "SPECS",
    "STREAMS",
    "ModalitySpec",
    "blob_modality",
    "reencoded",
    "spec",
]
