"""The public functions: ``concat_on_disk`` (a drop-in for anndata's), ``convert``,
``plan``, ``inspect`` and ``validate``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from . import _adcat
from ._errors import AdcatFileNotFoundError, AdcatKeyError, AdcatNotImplementedError, AdcatTypeError, AdcatValueError
from ._progress import run_with_bar
from ._targets import OutputTarget, Scratch, input_path, is_url

#: What names a store: a path, an open h5py group or file, or a zarr group or store.
Target = Union[str, "os.PathLike[str]", Any]

_STRATEGIES = ("same", "unique", "first", "only")

#: Bytes per element of ``max_loaded_elems``: a float32 value and an int32 index, the
#: unit anndata counts when it loads a sparse block.
BYTES_PER_ELEM = 8
#: The smallest budget derived from ``max_loaded_elems``: adcat decodes whole chunks, and
#: anndata's own chunks reach a few MiB.
MIN_DERIVED_BUDGET = 64 << 20


def _strategy(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if callable(value):
        raise AdcatNotImplementedError(
            f"{name}: a callable merge strategy is not supported by adcat; use one of {', '.join(map(repr, _STRATEGIES))}"
        )
    if value not in _STRATEGIES:
        raise AdcatKeyError(f"{name}: unknown merge strategy {value!r}; use None or one of {', '.join(map(repr, _STRATEGIES))}")
    return str(value)


def _axis(axis: Any) -> str:
    if isinstance(axis, str) and axis in ("obs", "var"):
        return axis
    if not isinstance(axis, (str, bool)) and axis in (0, 1):
        return "obs" if axis == 0 else "var"
    raise AdcatValueError(f"`axis` must be either 0, 1, 'obs', or 'var', was {axis!r}")


def _budget(max_memory: int | str | None, max_loaded_elems: int) -> str:
    if max_memory is not None:
        if isinstance(max_memory, bool) or not isinstance(max_memory, (int, str)):
            raise AdcatTypeError(f"max_memory must be bytes (int) or a size like '2GiB', not {type(max_memory).__name__}")
        return str(max_memory)
    if isinstance(max_loaded_elems, bool) or not isinstance(max_loaded_elems, int) or max_loaded_elems < 1:
        raise AdcatValueError(f"max_loaded_elems must be a positive integer, was {max_loaded_elems!r}")
    return str(max(max_loaded_elems * BYTES_PER_ELEM, MIN_DERIVED_BUDGET))


def _fill(fill_value: Any) -> float | None:
    if fill_value is None:
        return None
    try:
        return float(fill_value)
    except (TypeError, ValueError):
        raise AdcatNotImplementedError(f"fill_value must be a number (adcat fills numeric arrays), was {fill_value!r}") from None


def _zarr_format(given: int | None, target: OutputTarget) -> int:
    if given is not None:
        if given not in (2, 3):
            raise AdcatValueError(f"zarr_format must be 2 or 3, was {given!r}")
        return int(given)
    if target.zarr_format is not None:
        return int(target.zarr_format)
    return _anndata_zarr_write_format()


def _anndata_zarr_write_format() -> int:
    """anndata's ``settings.zarr_write_format`` when anndata is in use, else 3.

    Read as anndata's own writer reads it (bypassing the setting's deprecation
    descriptor), with the same ``DeprecationWarning`` when it asks for zarr v2.
    """
    anndata = sys.modules.get("anndata")
    if anndata is None:
        return 3
    settings = anndata.settings
    fmt = settings.__dict__.get("zarr_write_format")
    if fmt is None:
        fmt = getattr(settings, "zarr_write_format", 3)
    if fmt == 2:
        import warnings

        warnings.warn(
            "zarr v3 will become the only option in 0.14 anndata for `{read,write}_zarr`. "
            "This setting (`anndata.settings.zarr_write_format`) will be removed in 0.14.",
            DeprecationWarning,
            stacklevel=4,
        )
    return int(fmt)


def _location(path: str | os.PathLike[str]) -> Path | str:
    """A local path, or an ``s3://`` URL kept as the string it is."""
    return str(path) if is_url(path) else Path(os.fspath(path))


def _opt_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise AdcatTypeError(f"{name} must be a string or None, was {type(value).__name__}")


#: The options of :func:`concat_on_disk` that :func:`plan` shares, checked by ``_concat_args``.
_CONCAT_OPTIONS = (
    "max_loaded_elems", "axis", "join", "merge", "uns_merge", "label", "keys", "index_unique", "fill_value",
    "pairwise", "var_names", "var_key", "obs_filter", "obs_names", "var_filter", "max_memory", "zarr_format", "compression", "follow_external_links", "provenance",
)


def _options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The shared options among a caller's arguments (its ``locals()``)."""
    return {name: arguments[name] for name in _CONCAT_OPTIONS}


def _concat_args(
    in_files: Collection[Target] | Mapping[str, Target],
    out_file: Target,
    scratch: Scratch,
    *,
    max_loaded_elems: int,
    axis: Any,
    join: str,
    merge: Any,
    uns_merge: Any,
    label: str | None,
    keys: Collection[str] | None,
    index_unique: str | None,
    fill_value: Any,
    pairwise: bool,
    var_names: Sequence[str] | None,
    var_key: str | None,
    obs_filter: str | None,
    obs_names: Sequence[str] | None,
    var_filter: str | None,
    max_memory: int | str | None,
    zarr_format: int | None,
    compression: str | None,
    follow_external_links: bool,
    provenance: bool,
    task_size: int | str | None = None,
) -> tuple[OutputTarget, dict[str, Any]]:
    """Check arguments in anndata's order, with anndata's exception types."""
    if len(in_files) == 0:
        raise AdcatValueError("No objects to concatenate.")
    merge = _strategy(merge, "merge")
    uns_merge = _strategy(uns_merge, "uns_merge")
    if isinstance(out_file, (str, os.PathLike)) and not is_url(out_file):
        out = Path(os.fspath(out_file))
        if not out.parent.exists():
            raise AdcatFileNotFoundError(f"Parent directory of {out} does not exist.")
    if isinstance(in_files, Mapping):
        if keys is not None:
            raise AdcatTypeError("Cannot specify categories in both mapping keys and using `keys`. Only specify this once.")
        keys, in_files = list(in_files.keys()), list(in_files.values())
    else:
        in_files = list(in_files)
    axis_name = _axis(axis)
    if join not in ("inner", "outer"):
        raise AdcatValueError(f"`join` must be 'inner' or 'outer', was {join!r}")
    if keys is not None:
        keys = [str(k) for k in keys]
    target = OutputTarget(out_file, scratch)
    inputs = [input_path(f, scratch, f"in{i}") for i, f in enumerate(in_files)]
    args = dict(
        inputs=inputs,
        output=target.path,
        format=target.format,
        keys=keys,
        axis=axis_name,
        join=join,
        merge=merge,
        uns_merge=uns_merge,
        label=_opt_str(label, "label"),
        index_unique=_opt_str(index_unique, "index_unique"),
        fill_value=_fill(fill_value),
        pairwise=bool(pairwise),
        var_names=_names(var_names, "var_names"),
        var_key=_opt_str(var_key, "var_key"),
        obs_filter=_opt_str(obs_filter, "obs_filter"),
        obs_names=_names(obs_names, "obs_names"),
        var_filter=_opt_str(var_filter, "var_filter"),
        zarr_format=_zarr_format(zarr_format, target) if target.format == "zarr" else 3,
        compression=_opt_str(compression, "compression"),
        max_memory=_budget(max_memory, max_loaded_elems),
        follow_external_links=bool(follow_external_links),
        task_size=_task_size(task_size),
        provenance=bool(provenance),
    )
    return target, args


def _names(names: Sequence[str] | None, what: str) -> list[str] | None:
    """A list of names as Rust takes it: every entry a ``str``."""
    if names is None:
        return None
    if isinstance(names, (str, bytes, os.PathLike)):
        raise AdcatTypeError(f"{what} takes a list of names, not {type(names).__name__}; read a file with Path(f).read_text().splitlines()")
    out = list(names)
    bad = next((n for n in out if not isinstance(n, str)), None)
    if bad is not None:
        raise AdcatTypeError(f"{what} must hold str names, not {type(bad).__name__} ({bad!r})")
    return out


def _task_size(task_size: int | str | None) -> str | None:
    if task_size is None:
        return None
    if isinstance(task_size, bool) or not isinstance(task_size, (int, str)):
        raise AdcatTypeError(f"task_size must be bytes (int) or a size like '256MiB', not {type(task_size).__name__}")
    return str(task_size)


def concat_on_disk(
    in_files: Collection[Target] | Mapping[str, Target],
    out_file: Target,
    *,
    max_loaded_elems: int = 100_000_000,
    axis: Literal["obs", 0, "var", 1] = 0,
    join: Literal["inner", "outer"] = "inner",
    merge: Literal["same", "unique", "first", "only"] | None = None,
    uns_merge: Literal["same", "unique", "first", "only"] | None = None,
    label: str | None = None,
    keys: Collection[str] | None = None,
    index_unique: str | None = None,
    fill_value: Any | None = None,
    pairwise: bool = False,
    var_names: Sequence[str] | None = None,
    var_key: str | None = None,
    obs_filter: str | None = None,
    obs_names: Sequence[str] | None = None,
    var_filter: str | None = None,
    max_memory: int | str | None = None,
    zarr_format: Literal[2, 3] | None = None,
    compression: str | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    force: bool = True,
    follow_external_links: bool = False,
    provenance: bool = True,
    shuffle: bool = False,
    seed: int | None = None,
    layout: Literal["anndata", "annbatch"] = "anndata",
    obs_chunk: int | None = None,
    compact_indices: bool = False,
    dataset_size: int | str | None = None,
    virtual: bool = False,
    virtual_paths: Literal["auto", "relative", "absolute"] = "auto",
) -> None:
    """Concatenate AnnData stores on disk, as :func:`anndata.concat` would in memory.

    A drop-in for ``anndata.experimental.concat_on_disk`` (same parameters, defaults and
    exception types), run by adcat's engine out of core: any mix of ``.h5ad`` and zarr
    (v2, v3) inputs, every element (X, layers, obs, var, obsm, varm, obsp with
    ``pairwise``, uns with ``uns_merge``, raw), memory bounded by ``max_memory``. The
    GIL is released while it runs; Ctrl-C stops it and leaves no partial output. The
    output appears only when complete and verified.

    Parameters
    ----------
    in_files
        The inputs, in order: paths (``str`` or ``os.PathLike``), ``s3://BUCKET/PREFIX``
        URLs of zarr stores, open ``h5py.File`` / ``h5py.Group`` or ``zarr.Group`` /
        zarr store objects; or a mapping ``key -> input``, whose keys become ``keys``.
    out_file
        The output: a path (suffix ``.h5ad`` -> HDF5, anything else -> zarr, as
        anndata decides), an ``s3://BUCKET/PREFIX`` URL (zarr, published by writing its
        root metadata last; configured by the ``AWS_*`` environment), or an open
        ``h5py.File`` / ``h5py.Group`` or ``zarr.Group`` / zarr store, filled when the
        output is complete.
    max_loaded_elems
        anndata's bound on elements loaded at once. Without ``max_memory`` it sets the
        memory budget: ``8 * max_loaded_elems`` bytes (a float32 value and an int32
        index per element), at least 64 MiB. The default gives 800 MB.
    axis
        ``0`` / ``"obs"`` to stack cells, ``1`` / ``"var"`` to stack genes.
    join
        ``"inner"`` (intersection) or ``"outer"`` (union) of the other axis.
    merge
        How var annotations (varm, varp) are kept across inputs: ``None``, ``"same"``,
        ``"unique"``, ``"first"`` or ``"only"``, as in :func:`anndata.concat`.
    uns_merge
        The same for ``uns``.
    label
        Name of a categorical obs (var) column recording each row's input.
    keys
        Names of the inputs for ``label`` and ``index_unique`` (default ``"0"``,
        ``"1"``, ...). Converted to ``str``.
    index_unique
        Separator making the names along the axis unique: ``name + sep + key``.
    fill_value
        Value of entries missing after an outer join (default: 0 sparse, NaN dense).
    pairwise
        Concatenate obsp (varp) block-diagonally. anndata's ``concat_on_disk`` raises
        ``NotImplementedError`` here; adcat does it, as :func:`anndata.concat` does.
    var_names
        The output's var names, fixed (a list of unique ``str``; ``axis=0`` only): exactly
        these in this order instead of the join of the inputs' names; genes an input
        lacks are filled (``fill_value`` with ``join="outer"``, else 0 sparse / NaN
        dense, as anndata fills), its others dropped. ``raw`` keeps its own join.
    var_key
        Match the inputs' genes by this ``var`` column (e.g. ``"gene_ids"``) instead of
        their index; the output's var names are its values (``var_names``, if given, is
        in the column's terms). The inputs' own var indexes are not kept.
    obs_filter
        Keep only cells whose obs columns pass this expression, e.g.
        ``"n_genes >= 200 and cell_type in ['B', 'T']"`` (comparisons, ``in [...]``,
        ``and``/``or``/``not``, parentheses; see adcat's docs/cli.md). ``axis=0``, in
        this process only.
    obs_names
        Keep only these cells (names as in the output, i.e. with the ``index_unique``
        suffix), in input order.
    var_filter
        Keep only genes whose ``var`` columns pass this expression (the language of
        ``obs_filter``), as ``a[:, mask]`` of each input; ``raw`` is not filtered.
    max_memory
        adcat's memory budget for data in flight: bytes or a size like ``"2GiB"``;
        overrides ``max_loaded_elems``.
    zarr_format
        2 or 3 for a zarr output (default: the output group's format, else
        ``anndata.settings.zarr_write_format`` when anndata is imported, else 3).
    compression
        Chunk compression: ``"none"``, ``"gzip[:LEVEL]"``, ``"lzf"``,
        ``"zstd[:LEVEL]"``, ``"blosc[:CNAME[:LEVEL]]"`` (default: as anndata writes).
    threads
        Threads for compression and encoding (default: one per core).
    progress
        Show a tqdm bar (terminal or notebook). Default: when interactive and tqdm is
        installed.
    force
        Replace an existing ``out_file`` (as anndata does; only a file or an AnnData
        store, never an input). ``False`` raises ``FileExistsError`` instead.
    follow_external_links
        Read HDF5 external links and virtual datasets (refused by default).
    provenance
        Record the concatenation (adcat's version, the options, each input's key, path
        and shape) in the output's root attribute ``adcat``, which anndata ignores and
        :func:`inspect` shows (``"provenance"``). ``False`` records nothing.
    shuffle
        Write the cells in one pseudo-random order (for training loaders): row ``i`` of
        the concatenation goes to ``perm(i)`` (adcat's docs/concat-semantics.md §15),
        every cell-aligned element with it (obsp on both axes). ``axis=0``.
    seed
        The shuffle's seed (``0 <= seed < 2**64``): the same seed and inputs give the
        same order. Default: random, recorded in the provenance (``"shuffle_seed"``).
    layout
        ``"annbatch"``: the collection annbatch's ``Loader`` reads (``dataset_0``, ...
        under an ``annbatch-preshuffled`` root; zarr output); implies ``shuffle``,
        ``obs_chunk=64``, ``compact_indices`` and, without ``label``, a ``src_path``
        label of input paths.
    obs_chunk
        Rows per chunk of every dense cell-aligned array (e.g. 64).
    compact_indices
        Store sparse indices in the smallest unsigned type holding the gene count.
    dataset_size
        With ``layout="annbatch"``: uncompressed bytes (or a size like ``"20GiB"``, the
        default) of one dataset.
    virtual
        For an ``.h5ad`` output from ``.h5ad`` inputs: map X, layers, obsm arrays and
        raw/X as HDF5 virtual datasets over the inputs' arrays where no value changes
        (same var, dtype and layout), instead of copying them; other matrices are
        copied with a warning. The output then reads its inputs.
    virtual_paths
        How a virtual output names its inputs: ``"auto"`` (relative when an input lies
        in the output's directory or below, else absolute), ``"relative"``,
        ``"absolute"``.

    Returns
    -------
    None
        Warnings (e.g. elements dropped because they differ) are issued with
        :mod:`warnings` as ``UserWarning``.

    Raises
    ------
    ValueError
        No inputs, an invalid ``axis``/``join``/``keys``, or inputs that are not valid
        AnnData or cannot be combined (:class:`adcat.AdcatValueError`).
    KeyError
        An unknown merge strategy name (:class:`adcat.AdcatKeyError`).
    TypeError
        ``keys`` with a mapping, or an input or output of an unsupported type
        (:class:`adcat.AdcatTypeError`).
    FileNotFoundError
        A missing input or output directory (:class:`adcat.AdcatFileNotFoundError`).
    FileExistsError
        ``out_file`` exists and ``force=False`` (:class:`adcat.AdcatFileExistsError`).
    NotImplementedError
        A callable merge strategy, or an element adcat cannot concatenate
        (:class:`adcat.AdcatNotImplementedError`).
    OSError
        Reading or writing failed (:class:`adcat.AdcatOSError`).
    KeyboardInterrupt
        Ctrl-C: the run stopped and its partial output was removed.

    Examples
    --------
    >>> import adcat
    >>> adcat.concat_on_disk(["a.h5ad", "b.zarr"], "atlas.h5ad", join="outer", label="batch")  # doctest: +SKIP
    """
    scratch = Scratch()
    try:
        target, args = _concat_args(in_files, out_file, scratch, **_options(locals()))
        args.update(_shuffle_args(shuffle, seed, layout, obs_chunk, compact_indices, dataset_size))
        if virtual_paths not in ("auto", "relative", "absolute"):
            raise AdcatValueError(f"virtual_paths must be 'auto', 'relative' or 'absolute', was {virtual_paths!r}")
        args["virtual_paths"] = virtual_paths if virtual else None
        warnings_ = run_with_bar(
            progress, "adcat concat",
            lambda bar: _adcat.concat(args, force=bool(force) or target.is_object, threads=threads, progress=bar),
        )
        target.deliver()
    finally:
        scratch.cleanup()
    _warn(warnings_)


def _shuffle_args(shuffle: Any, seed: Any, layout: Any, obs_chunk: Any, compact_indices: Any, dataset_size: Any) -> dict[str, Any]:
    """The shuffle and loader-layout options of :func:`concat_on_disk`, checked."""
    if layout not in ("anndata", "annbatch"):
        raise AdcatValueError(f"layout must be 'anndata' or 'annbatch', was {layout!r}")
    shuffle = bool(shuffle) or layout == "annbatch"
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise AdcatValueError(f"seed must be an int in [0, 2**64), was {seed!r}")
        if not shuffle:
            raise AdcatValueError("seed orders a shuffled output: pass shuffle=True")
    if obs_chunk is not None and (isinstance(obs_chunk, bool) or not isinstance(obs_chunk, int) or obs_chunk < 1):
        raise AdcatValueError(f"obs_chunk must be a positive int, was {obs_chunk!r}")
    if dataset_size is not None and not isinstance(dataset_size, (int, str)):
        raise AdcatTypeError(f"dataset_size must be an int or a size string, was {type(dataset_size).__name__}")
    return dict(
        shuffle=shuffle,
        seed=seed,
        layout=layout,
        obs_chunk=obs_chunk,
        compact_indices=bool(compact_indices),
        dataset_size=None if dataset_size is None else str(dataset_size),
    )


def _warn(messages: list[str]) -> None:
    import warnings

    for m in messages:
        warnings.warn(m, UserWarning, stacklevel=3)


def append(
    store: str | os.PathLike[str],
    inputs: Collection[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]],
    *,
    join: Literal["inner", "outer"] = "inner",
    merge: Any = None,
    uns_merge: Any = None,
    label: str | None = None,
    keys: Collection[str] | None = None,
    index_unique: str | None = None,
    fill_value: Any = None,
    pairwise: bool = False,
    var_names: Sequence[str] | None = None,
    var_key: str | None = None,
    obs_filter: str | None = None,
    obs_names: Sequence[str] | None = None,
    var_filter: str | None = None,
    provenance: bool = True,
    max_memory: int | str | None = None,
    follow_external_links: bool = False,
    threads: int | None = None,
    progress: bool | None = None,
) -> None:
    """Add ``inputs`` to the AnnData store ``store`` (a local ``.h5ad`` file or ``.zarr``
    directory) in place, as ``adcat append`` does.

    Afterwards the store equals ``anndata.concat`` of everything it was built from and
    the new inputs with the same options, except that under ``join="outer"`` the
    store's var names keep their order and new ones follow. The store changes in one
    step once everything is written and checked; on an error or Ctrl-C it is as it was.
    What cannot be appended without rewriting the store (a new obs column, a dtype
    change, dense matrices gaining genes, ...) raises before anything changes.

    Parameters
    ----------
    store
        The store to grow.
    inputs
        Stores to add, in order; a mapping gives their keys.
    join, merge, uns_merge, label, keys, index_unique, fill_value, pairwise
        As for :func:`concat_on_disk` (the store counts as one input of the merges;
        with ``pairwise`` each obsp key grows block-diagonally).
        Without ``keys``, the keys continue the store's numbering.
    var_names
        The store's var names (new genes are dropped, missing ones filled).
    var_key
        Match the new inputs' genes by this var column (the store's by its index, which
        must be in the column's terms), as for :func:`concat_on_disk`.
    obs_filter, obs_names, var_filter
        Add only the new cells that pass the filter or are named, and only the new
        inputs' genes that pass ``var_filter`` (as for :func:`concat_on_disk`); the
        store's cells and genes stay.
    provenance
        Add the append to the store's provenance record (``True``).
    max_memory
        Memory budget for data in flight (bytes, or a size like ``"2GiB"``).
    follow_external_links, threads, progress
        As for :func:`concat_on_disk`.

    Raises
    ------
    FileNotFoundError
        ``store`` or an input does not exist (:class:`adcat.AdcatFileNotFoundError`).
    NotImplementedError
        The append would need the store rewritten (:class:`adcat.AdcatNotImplementedError`).
    ValueError
        Invalid options or inputs (:class:`adcat.AdcatValueError`).
    OSError
        Reading or writing failed (:class:`adcat.AdcatOSError`).
    KeyboardInterrupt
        Ctrl-C: the run stopped and the store is unchanged.
    """
    if isinstance(inputs, Mapping):
        if keys is not None:
            raise AdcatTypeError("Cannot specify categories in both mapping keys and using `keys`. Only specify this once.")
        keys, inputs = list(inputs.keys()), list(inputs.values())
    if len(inputs) == 0:
        raise AdcatValueError("No objects to append.")
    if join not in ("inner", "outer"):
        raise AdcatValueError(f"`join` must be 'inner' or 'outer', was {join!r}")
    args = dict(
        inputs=[os.fspath(p) for p in inputs],
        output=os.fspath(store),
        format="auto",
        keys=None if keys is None else [str(k) for k in keys],
        axis="obs",
        join=join,
        merge=_strategy(merge, "merge"),
        uns_merge=_strategy(uns_merge, "uns_merge"),
        label=_opt_str(label, "label"),
        index_unique=_opt_str(index_unique, "index_unique"),
        fill_value=_fill(fill_value),
        pairwise=bool(pairwise),
        var_names=_names(var_names, "var_names"),
        var_key=_opt_str(var_key, "var_key"),
        obs_filter=_opt_str(obs_filter, "obs_filter"),
        obs_names=_names(obs_names, "obs_names"),
        var_filter=_opt_str(var_filter, "var_filter"),
        zarr_format=3,
        compression=None,
        max_memory=_budget(max_memory, 100_000_000),
        follow_external_links=bool(follow_external_links),
        task_size=None,
        provenance=bool(provenance),
    )
    warnings_ = run_with_bar(progress, "adcat append", lambda bar: _adcat.append(args, threads=threads, progress=bar))
    _warn(warnings_)


def plan(
    in_files: Collection[Target] | Mapping[str, Target],
    out_file: Target,
    *,
    max_loaded_elems: int = 100_000_000,
    axis: Literal["obs", 0, "var", 1] = 0,
    join: Literal["inner", "outer"] = "inner",
    merge: Literal["same", "unique", "first", "only"] | None = None,
    uns_merge: Literal["same", "unique", "first", "only"] | None = None,
    label: str | None = None,
    keys: Collection[str] | None = None,
    index_unique: str | None = None,
    fill_value: Any | None = None,
    pairwise: bool = False,
    var_names: Sequence[str] | None = None,
    var_key: str | None = None,
    obs_filter: str | None = None,
    obs_names: Sequence[str] | None = None,
    var_filter: str | None = None,
    max_memory: int | str | None = None,
    zarr_format: Literal[2, 3] | None = None,
    compression: str | None = None,
    follow_external_links: bool = False,
    provenance: bool = True,
) -> dict[str, Any]:
    """What :func:`concat_on_disk` with the same arguments would do, writing nothing.

    Reads only metadata, indexes and off-axis tables. The result is what
    ``adcat plan --json`` prints: ``shape``, ``elements`` (path, encoding, shape, dtype,
    bytes), ``decisions`` (how each element is combined), ``warnings``,
    ``estimated_output_bytes``, ``estimated_peak_memory_bytes`` and the ``job`` of
    tasks.

    Parameters
    ----------
    in_files, out_file, max_loaded_elems, axis, join, merge, uns_merge, label, keys, index_unique, fill_value, pairwise, var_names, var_key, obs_filter, obs_names, var_filter, max_memory, zarr_format, compression, follow_external_links, provenance
        As for :func:`concat_on_disk`.

    Returns
    -------
    dict
        The plan.

    Raises
    ------
    ValueError, KeyError, TypeError, FileNotFoundError, NotImplementedError, OSError
        As :func:`concat_on_disk`.

    Examples
    --------
    >>> p = adcat.plan(["a.h5ad", "b.h5ad"], "out.zarr", join="outer")  # doctest: +SKIP
    >>> p["shape"]  # doctest: +SKIP
    [3500, 520]
    """
    scratch = Scratch()
    try:
        _, args = _concat_args(in_files, out_file, scratch, **_options(locals()))
        return json.loads(_adcat.plan(args))
    finally:
        scratch.cleanup()


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    zarr_format: Literal[2, 3] = 3,
    compression: str | None = None,
    max_memory: int | str = "1GiB",
    force: bool = False,
    threads: int | None = None,
    progress: bool | None = None,
    follow_external_links: bool = False,
) -> None:
    """Convert one AnnData store to another format, every element kept (``adcat convert``).

    Parameters
    ----------
    src
        The input ``.h5ad`` file or zarr directory (format told by its contents).
    dst
        The output path: ``.h5ad`` -> HDF5, ``.zarr`` -> zarr.
    zarr_format
        2 or 3, for a zarr output.
    compression
        As for :func:`concat_on_disk`.
    max_memory
        Memory budget for data in flight: bytes or a size like ``"2GiB"``.
    force
        Replace an existing ``dst`` (a file or an AnnData store, never ``src``).
    threads, progress, follow_external_links
        As for :func:`concat_on_disk`.

    Raises
    ------
    FileNotFoundError
        ``src`` or the directory of ``dst`` does not exist.
    FileExistsError
        ``dst`` exists and ``force=False``.
    ValueError, NotImplementedError, OSError
        As for :func:`concat_on_disk`.

    Examples
    --------
    >>> adcat.convert("pbmc.h5ad", "pbmc.zarr", compression="zstd:5")  # doctest: +SKIP
    """
    src_p, dst_p = _location(src), _location(dst)
    if zarr_format not in (2, 3):
        raise AdcatValueError(f"zarr_format must be 2 or 3, was {zarr_format!r}")
    run_with_bar(
        progress, "adcat convert",
        lambda bar: _adcat.convert(
            src_p, dst_p, format="auto", zarr_format=int(zarr_format), compression=_opt_str(compression, "compression"),
            max_memory=_budget(max_memory, 1), force=bool(force), follow_external_links=bool(follow_external_links),
            threads=threads, progress=bar,
        ),
    )


def inspect(path: str | os.PathLike[str], *, follow_external_links: bool = False) -> dict[str, Any]:
    """The element tree of a store, as ``adcat inspect --json`` prints it.

    Parameters
    ----------
    path
        An ``.h5ad`` file or zarr directory.
    follow_external_links
        Read HDF5 external links and virtual datasets.

    Returns
    -------
    dict
        ``location``, ``format`` (``hdf5``, ``zarr2``, ``zarr3``) and ``root``: each
        element with its encoding, shape, dtype, chunking, codecs and sizes.

    Raises
    ------
    FileNotFoundError, ValueError, NotImplementedError, OSError
        As for :func:`concat_on_disk`.

    Examples
    --------
    >>> adcat.inspect("pbmc.h5ad")["root"]["children"][0]["name"]  # doctest: +SKIP
    'X'
    """
    return json.loads(_adcat.inspect(_location(path), follow_external_links=bool(follow_external_links)))


def validate(path: str | os.PathLike[str], *, quick: bool = False, follow_external_links: bool = False) -> list[str]:
    """Check a store against the AnnData format (``adcat validate``).

    Parameters
    ----------
    path
        An ``.h5ad`` file or zarr directory.
    quick
        Only metadata, attributes and shapes (skip scanning sparse indices and codes).
    follow_external_links
        Read HDF5 external links and virtual datasets.

    Returns
    -------
    list of str
        Every problem found, each naming the element path; empty when valid.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is not an HDF5 file or zarr directory at all.

    Examples
    --------
    >>> adcat.validate("pbmc.h5ad")  # doctest: +SKIP
    []
    """
    _, _, problems = _adcat.validate(_location(path), quick=bool(quick), follow_external_links=bool(follow_external_links))
    return list(problems)
