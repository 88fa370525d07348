//! The `adcat` command line, as a library: [`run_main`] is the whole command (the
//! `adcat` binary and the Python package's `adcat` script call it), and [`api`] offers
//! the same jobs to other front ends (the Python package) with typed errors.

pub mod api;
mod append;
pub mod guard;
mod inputs;
mod job;
mod planview;
mod progress;
mod stores;
mod synth;

use adcat_format::{inspect, WriteOptions};
use adcat_store::Compression;
use anyhow::{anyhow, bail, Result};
use clap::{CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use stores::{open_input, output_format, Output};

#[derive(Parser, Debug)]
#[command(name = "adcat", version, about = "Concatenate and convert AnnData stores (.h5ad, .zarr) out of core")]
struct Cli {
    /// No progress display.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print the time and size of every element written (on stderr).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Worker threads for compression and encoding (default: one per core).
    #[arg(short = 'j', long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// Read HDF5 external links, virtual datasets and externally stored data, which take
    /// data from files other than the inputs named (refused by default).
    #[arg(long, global = true)]
    follow_external_links: bool,
    /// Requests in flight at once to each store in object storage (s3://).
    #[arg(long, global = true, value_name = "N", default_value_t = adcat_zarr::s3::DEFAULT_CONCURRENCY)]
    s3_concurrency: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct WriteArgs {
    /// Zarr format of a .zarr output.
    #[arg(long, default_value = "3", value_parser = ["2", "3"])]
    zarr_format: String,
    /// Chunk compression: none, gzip[:LEVEL], lzf, zstd[:LEVEL], blosc[:CNAME[:LEVEL]].
    /// Default as anndata: none for .h5ad, zstd for zarr v3, blosc-lz4 for zarr v2.
    #[arg(long)]
    compression: Option<String>,
    /// Memory budget for data in flight, e.g. 512MiB, 2GiB.
    #[arg(long, default_value = "1GiB")]
    max_memory: String,
    /// Target uncompressed size of a zarr v3 shard, e.g. 256MiB (default 64MiB; at most
    /// 1/16 of --max-memory, since a shard is encoded whole in memory).
    #[arg(long, value_name = "SIZE")]
    shard_size: Option<String>,
    /// Overwrite an existing OUTPUT (never an input).
    #[arg(long)]
    force: bool,
}

/// The options that decide a result, shared by `concat`, `plan` and `append`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CombineArgs {
    /// How to combine the other axis: inner (intersection) or outer (union).
    #[arg(long, default_value = "inner", value_parser = ["inner", "outer"])]
    pub join: String,
    /// Strategy for off-axis annotations (var columns, varm, varp).
    #[arg(long, value_parser = ["same", "unique", "first", "only"])]
    pub merge: Option<String>,
    /// Strategy for uns.
    #[arg(long, value_parser = ["same", "unique", "first", "only"])]
    pub uns_merge: Option<String>,
    /// Add a categorical column with this name recording each cell's input.
    #[arg(long)]
    pub label: Option<String>,
    /// Names of the inputs for --label and --index-unique (default 0,1,...; `append`:
    /// continuing the store's numbering).
    #[arg(long, value_delimiter = ',')]
    pub keys: Option<Vec<String>>,
    /// Make names along the axis unique: NAME + SEP + KEY.
    #[arg(long, value_name = "SEP")]
    pub index_unique: Option<String>,
    /// The output's var names, fixed: FILE has one name per line (`-`: standard input);
    /// genes an input lacks are filled, its others dropped (with --axis obs; `append`:
    /// the store's own names).
    #[arg(long, value_name = "FILE")]
    pub var_names: Option<PathBuf>,
    /// Value for entries missing after an outer join (default 0 sparse, NaN dense).
    #[arg(long, allow_negative_numbers = true)]
    pub fill_value: Option<f64>,
    /// Do not record the command, its options and inputs in the output (root attribute
    /// `adcat`, shown by `adcat inspect`).
    #[arg(long)]
    pub no_provenance: bool,
}

/// The arguments of `concat` and `plan`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ConcatArgs {
    /// Input stores, in order: paths, KEY=PATH (the key as with --keys), or glob
    /// patterns (matches in sorted order).
    #[arg(required_unless_present = "inputs_from", value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Read more inputs from FILE (`-`: standard input): one path per line, or
    /// KEY<TAB>PATH; `#` starts a comment line. Relative paths are relative to FILE.
    #[arg(long, value_name = "FILE")]
    pub inputs_from: Option<PathBuf>,
    /// Output path; .h5ad -> HDF5, .zarr -> Zarr.
    #[arg(short, long)]
    output: PathBuf,
    /// Axis to concatenate along: obs (0) or var (1).
    #[arg(long, default_value = "obs", value_parser = ["obs", "var", "0", "1"])]
    axis: String,
    #[command(flatten)]
    combine: CombineArgs,
    /// Match the inputs' genes by this var column (e.g. gene_ids) instead of their
    /// index; the output's var names are its values (with --var-names: the list, in the
    /// column's terms).
    #[arg(long, value_name = "COLUMN")]
    pub var_key: Option<String>,
    /// Keep only cells whose obs columns pass EXPR, e.g. "n_genes >= 200 and
    /// cell_type in ['B', 'T']" (see docs/cli.md).
    #[arg(long, value_name = "EXPR")]
    pub obs_filter: Option<String>,
    /// Keep only genes whose var columns pass EXPR (as --obs-filter), e.g.
    /// "highly_variable == true".
    #[arg(long, value_name = "EXPR")]
    pub var_filter: Option<String>,
    /// Keep only the cells named in FILE (one per line; names as in the output, with
    /// the --index-unique suffix), in input order.
    #[arg(long, value_name = "FILE")]
    pub obs_names: Option<PathBuf>,
    /// The names of `obs_names`, given directly (the Python API).
    #[arg(skip)]
    pub obs_names_list: Option<Vec<String>>,
    /// The names of `var_names`, given directly (the Python API).
    #[arg(skip)]
    pub var_names_list: Option<Vec<String>>,
    /// Rows per chunk of every array with one row per cell (dense X, layers, obsm, obs
    /// columns), e.g. 64 for loaders reading random minibatches.
    #[arg(long, value_name = "ROWS")]
    pub obs_chunk: Option<u64>,
    /// Store sparse indices in the smallest unsigned integer type that holds every
    /// column number (uint16 for up to 65,536 genes) instead of int32.
    #[arg(long)]
    pub compact_indices: bool,
    /// Write the cells in one pseudo-random order (for training loaders that read
    /// contiguous minibatches); every cell-aligned element follows it, obsp on both axes.
    #[arg(long)]
    pub shuffle: bool,
    /// The shuffle's seed: the same seed and inputs give the same order (default: a
    /// random seed, printed and recorded in the output).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Output layout: one AnnData store, or annbatch's collection of shuffled datasets
    /// (`dataset_0`, ... under an `annbatch-preshuffled` root; zarr only), which
    /// annbatch's Loader reads directly. annbatch implies --shuffle, --obs-chunk 64,
    /// --compact-indices and, without --label, a `src_path` label holding each input's
    /// path (or --keys).
    #[arg(long, default_value = "anndata", value_parser = ["anndata", "annbatch"])]
    pub layout: String,
    /// Map X, layers, obsm arrays and raw/X as HDF5 virtual datasets over the inputs'
    /// arrays instead of copying them (.h5ad output from .h5ad inputs): where no value
    /// changes — same var, same dtype, CSR or dense in every input; other matrices are
    /// copied, with a warning saying why. The output then needs its inputs to be read.
    #[arg(long = "virtual")]
    pub virtual_: bool,
    /// With --virtual: how the output names its inputs' files: auto (relative when an
    /// input lies beside the output or below its directory, so they move together;
    /// absolute otherwise), relative, absolute.
    #[arg(long, default_value = "auto", value_parser = ["auto", "relative", "absolute"], requires = "virtual_")]
    pub virtual_paths: String,
    /// With --layout annbatch: uncompressed size of one dataset (X, layers, obsm, obs).
    #[arg(long, value_name = "SIZE", default_value = "20GiB")]
    pub dataset_size: String,
    /// Concatenate obsp (varp for --axis var) block-diagonally.
    #[arg(long)]
    pairwise: bool,
    /// Target uncompressed output size of one task of the job (see `adcat job`).
    #[arg(long, default_value = "1GiB", value_name = "SIZE")]
    task_size: String,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert one AnnData store to another format (h5ad, zarr v2, zarr v3), every element kept.
    Convert {
        /// Input .h5ad file or .zarr directory.
        input: PathBuf,
        /// Output path; .h5ad -> HDF5, .zarr -> Zarr.
        output: PathBuf,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Concatenate AnnData stores (any mix of .h5ad and .zarr), like `anndata.concat`.
    Concat {
        #[command(flatten)]
        args: ConcatArgs,
        /// Print the plan (as `adcat plan`) and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: the plan as JSON.
        #[arg(long, requires = "dry_run")]
        json: bool,
        /// Run as a job recorded in DIR (see `adcat job`), so that an interrupted run
        /// can be resumed with --resume; zarr outputs.
        #[arg(long, value_name = "DIR", conflicts_with = "dry_run")]
        job_dir: Option<PathBuf>,
        /// Continue the job in --job-dir: finished tasks are not run again.
        #[arg(long, requires = "job_dir")]
        resume: bool,
    },
    /// Add inputs to an existing store (h5ad or zarr) in place, as if it had been
    /// concatenated with them at once; the store changes only once all is written.
    Append {
        #[command(flatten)]
        args: append::AppendArgs,
    },
    /// Show what `adcat concat` with the same arguments would do, reading only metadata,
    /// indexes and off-axis tables: output shape, every element and how it is combined,
    /// dropped keys, dtype promotions, reindexing, estimated size and memory.
    Plan {
        #[command(flatten)]
        args: ConcatArgs,
        /// Machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
    /// A concatenation as a job of tasks for a scheduler: create, run, status, finish.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Write a synthetic AnnData store (sample and benchmark data).
    Generate {
        /// Output path; .h5ad -> HDF5, .zarr -> Zarr.
        output: PathBuf,
        /// Number of cells (obs).
        #[arg(long, default_value_t = 1000)]
        cells: u64,
        /// Number of genes (var).
        #[arg(long, default_value_t = 500)]
        genes: u64,
        /// First gene number (files with different offsets share part of their genes).
        #[arg(long, default_value_t = 0)]
        gene_offset: u64,
        /// Fraction of non-zero entries in X.
        #[arg(long, default_value_t = 0.05)]
        density: f64,
        /// Random seed (also prefixes cell names).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Put the genes in a random (seeded) order.
        #[arg(long)]
        shuffle_genes: bool,
        /// Write X and the counts layer dense instead of CSR.
        #[arg(long)]
        dense: bool,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Check a store against the AnnData format and report every problem found.
    Validate {
        /// The .h5ad file or .zarr directory to check.
        path: PathBuf,
        /// Only metadata, attributes and shapes (skip scanning sparse indices and codes).
        #[arg(long)]
        quick: bool,
    },
    /// Print shell completions for adcat (e.g. `adcat completions bash > /etc/bash_completion.d/adcat`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) for adcat.
    #[command(hide = true)]
    Man,
    /// Show the element tree: encodings, shapes, dtypes, nnz, chunking, codecs and sizes.
    Inspect {
        /// Machine-readable JSON instead of the indented tree.
        #[arg(long)]
        json: bool,
        /// .h5ad file or .zarr directory.
        path: PathBuf,
    },
}

/// Parse sizes like `512MiB`, `2GiB`, `1G`, `1000000`.
pub(crate) fn parse_size(s: &str) -> Result<u64> {
    let v = parse_bytes(s)?;
    if v < (1 << 20) {
        bail!("invalid size {s:?}: the memory budget must be at least 1MiB");
    }
    Ok(v)
}

/// A size in bytes: a number with an optional unit (k, KiB, M, MiB, G, GiB, T, TiB).
fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid size {s:?}: expected e.g. 512MiB or 2GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => bail!("invalid size {s:?}: unknown unit {unit:?}"),
    };
    Ok(((n * mult as f64) as u64).max(1))
}

pub(crate) fn parse_compression(s: &str) -> Result<Compression> {
    let parts: Vec<&str> = s.split(':').collect();
    let level = |i: usize, default: i64, max: i64| -> Result<i64> {
        match parts.get(i) {
            None => Ok(default),
            Some(x) => x
                .parse::<i64>()
                .ok()
                .filter(|l| (0..=max).contains(l))
                .ok_or_else(|| anyhow!("invalid compression level {x:?} in {s:?} (0-{max})")),
        }
    };
    Ok(match parts[0] {
        "none" => Compression::None,
        "gzip" => Compression::Gzip(level(1, 4, 9)? as u32),
        "lzf" => Compression::Lzf,
        "zstd" => Compression::Zstd(level(1, 3, 22)? as i32),
        "blosc" => Compression::Blosc {
            cname: parts.get(1).copied().unwrap_or("lz4").to_owned(),
            clevel: level(2, 5, 9)? as u8,
            shuffle: 1,
        },
        other => bail!("invalid --compression {other:?}: use none, gzip[:L], lzf, zstd[:L] or blosc[:CNAME[:L]]"),
    })
}

/// `c` as `--compression` takes it (inverse of [`parse_compression`]).
pub(crate) fn compression_arg(c: &Compression) -> String {
    match c {
        Compression::None => "none".into(),
        Compression::Gzip(l) => format!("gzip:{l}"),
        Compression::Lzf => "lzf".into(),
        Compression::Zstd(l) => format!("zstd:{l}"),
        Compression::Blosc { cname, clevel, .. } => format!("blosc:{cname}:{clevel}"),
        // Found on read only; parsing it back fails, as it should.
        Compression::Other(s) => s.clone(),
    }
}

fn write_options(w: &WriteArgs) -> Result<WriteOptions> {
    let defaults = WriteOptions::default();
    let max_memory = parse_size(&w.max_memory).map_err(|e| anyhow!("--max-memory: {e}"))?;
    let shard_bytes = match &w.shard_size {
        None => defaults.shard_bytes,
        Some(s) => {
            let b = parse_size(s).map_err(|e| anyhow!("--shard-size: {e}"))?;
            if b > max_memory / 16 {
                bail!("--shard-size {s} needs --max-memory of at least 16 times as much (a shard is encoded whole in memory); raise --max-memory or lower --shard-size");
            }
            b
        }
    };
    Ok(WriteOptions {
        compression: w.compression.as_deref().map(parse_compression).transpose().map_err(|e| anyhow!("--compression: {e}"))?,
        max_memory,
        shard_bytes,
        ..defaults
    })
}

/// Refuse a codec the output format cannot carry (readable without plugins).
pub(crate) fn check_codec(opts: &WriteOptions, format: stores::OutFormat, output: &std::path::Path) -> Result<()> {
    if opts.compression.as_ref().is_some_and(|c| matches!(c, Compression::Lzf) && format != stores::OutFormat::H5ad) {
        bail!("{}: lzf compression is only available for .h5ad output; use zstd, gzip or blosc for zarr", output.display());
    }
    if opts.compression.as_ref().is_some_and(|c| matches!(c, Compression::Zstd(_) | Compression::Blosc { .. }) && format == stores::OutFormat::H5ad) {
        bail!("{}: zstd and blosc need an HDF5 plugin to read; use gzip or lzf for .h5ad output", output.display());
    }
    Ok(())
}

/// A concatenation's arguments, checked: inputs, options, output and its format.
pub(crate) struct Prepared {
    pub inputs: Vec<PathBuf>,
    pub copts: adcat_concat::ConcatOptions,
    pub output: PathBuf,
    pub format: stores::OutFormat,
    pub force: bool,
}

pub(crate) fn prepare(args: ConcatArgs) -> Result<Prepared> {
    let specs = inputs::resolve(&args.inputs, args.inputs_from.as_deref())?;
    prepare_inputs(specs, args, None)
}

/// As [`prepare`], with the inputs resolved already (`args.inputs` is not read), and the
/// output format given (`None`: from the output's extension).
pub(crate) fn prepare_inputs(specs: Vec<inputs::Input>, args: ConcatArgs, format: Option<stores::OutFormat>) -> Result<Prepared> {
    let ConcatArgs { inputs: _, inputs_from: _, output, axis, combine, pairwise, task_size, var_key, var_names_list, obs_filter, obs_names, obs_names_list, var_filter, obs_chunk, compact_indices, shuffle, seed, layout, dataset_size, virtual_, virtual_paths, write } = args;
    let CombineArgs { join, merge, uns_merge, label, keys, index_unique, var_names, fill_value, no_provenance } = combine;
    let annbatch = layout == "annbatch";
    let shuffle = shuffle || annbatch;
    if seed.is_some() && !shuffle {
        bail!("--seed orders a shuffled output: add --shuffle");
    }
    let keys = inputs::keys(&specs, keys)?;
    // annbatch's collections label each cell with the path of the input it came from.
    let (label, keys) = match (annbatch, label) {
        (true, None) => (Some("src_path".to_owned()), keys.or_else(|| Some(specs.iter().map(|i| i.path.display().to_string()).collect()))),
        (_, label) => (label, keys),
    };
    let inputs: Vec<PathBuf> = specs.into_iter().map(|i| i.path).collect();
    if obs_chunk == Some(0) {
        bail!("--obs-chunk must be at least 1 row");
    }
    let obs_chunk = obs_chunk.or(annbatch.then_some(64));
    let opts = WriteOptions { obs_chunk, compact_indices: compact_indices || annbatch, ..write_options(&write)? };
    let layout = if annbatch {
        let dataset_bytes = parse_bytes(&dataset_size).map_err(|e| anyhow!("--dataset-size: {e}"))?;
        adcat_concat::shuffle::Layout::Annbatch { dataset_bytes }
    } else {
        adcat_concat::shuffle::Layout::AnnData
    };
    let format = match format {
        Some(f) => f,
        None => output_format(&output, write.zarr_format.parse().unwrap_or(3))?,
    };
    let axis = if axis == "var" || axis == "1" { adcat_concat::Axis::Var } else { adcat_concat::Axis::Obs };
    let stdin_readers = [var_names.as_deref(), obs_names.as_deref()].iter().filter(|f| f.is_some_and(|f| f == std::path::Path::new("-"))).count();
    if stdin_readers > 1 {
        bail!("--var-names and --obs-names cannot both read standard input (`-`); give one of them a file");
    }
    let off_names = match (var_names_list, var_names) {
        (Some(list), _) => Some(inputs::unique_names(list, "var_names")?),
        (None, Some(file)) => Some(inputs::read_names(&file, "--var-names")?),
        (None, None) => None,
    };
    if off_names.is_some() && axis == adcat_concat::Axis::Var {
        bail!("--var-names fixes the var names of a concatenation along obs; along var they are the inputs' own, concatenated");
    }
    if obs_chunk.is_some() && axis == adcat_concat::Axis::Var {
        bail!("--obs-chunk chunks the arrays along obs of a concatenation along obs; along var, cells are not the rows written");
    }
    if var_key.is_some() && axis == adcat_concat::Axis::Var {
        bail!("--var-key matches the var of a concatenation along obs; along var the inputs' var are concatenated, not matched");
    }
    if var_key.as_deref().is_some_and(str::is_empty) {
        bail!("--var-key needs a column name");
    }
    let obs_select = obs_selection(obs_filter.as_deref(), obs_names, obs_names_list)?;
    let parse_strategy = |s: Option<String>| s.map(|x| x.parse::<adcat_concat::Strategy>().map_err(|e| anyhow!(e))).transpose();
    let copts = adcat_concat::ConcatOptions {
        axis,
        off_names: off_names.map(std::sync::Arc::new),
        raw_off_names: None,
        off_key: var_key,
        obs_select,
        obs_filter_text: obs_filter,
        var_filter: var_filter.as_deref().map(|f| adcat_concat::select::parse(f).map_err(|e| anyhow!("--var-filter {f:?}: {e}"))).transpose()?,
        var_filter_text: var_filter,
        var_filter_skip: 0,
        join: if join == "outer" { adcat_concat::Join::Outer } else { adcat_concat::Join::Inner },
        merge: parse_strategy(merge)?,
        uns_merge: parse_strategy(uns_merge)?,
        label,
        keys,
        index_unique,
        fill_value,
        pairwise,
        shuffle_seed: shuffle.then(|| seed.unwrap_or_else(random_seed)),
        layout,
        virtual_paths: virtual_.then_some(match virtual_paths.as_str() {
            "relative" => adcat_concat::vds::VirtualPaths::Relative,
            "absolute" => adcat_concat::vds::VirtualPaths::Absolute,
            _ => adcat_concat::vds::VirtualPaths::Auto,
        }),
        write: opts,
        task_bytes: Some(parse_bytes(&task_size).map_err(|e| anyhow!("--task-size: {e}"))?),
        no_provenance,
        dry_run: false,
    };
    if let Some(k) = &copts.keys {
        if k.len() < inputs.len() {
            bail!("--keys has {} names for {} inputs; give one name per input (comma-separated)", k.len(), inputs.len());
        }
    }
    if copts.virtual_paths.is_some() && format != stores::OutFormat::H5ad {
        bail!("{}: --virtual maps the inputs' HDF5 datasets into an .h5ad output; name a .h5ad output", output.display());
    }
    if copts.virtual_paths.is_some() && copts.shuffle_seed.is_some() {
        bail!("--virtual maps each input's rows in place; it cannot be combined with --shuffle");
    }
    if annbatch && format == stores::OutFormat::H5ad {
        bail!("{}: --layout annbatch writes a zarr collection (annbatch's loader reads sparse X from zarr only); name a .zarr output", output.display());
    }
    Ok(Prepared { inputs, copts, output, format, force: write.force })
}

/// A seed for `--shuffle` without `--seed`: std's per-process random hasher keys.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// Run a prepared concatenation into `out` in this process (shuffled through a scratch
/// store beside the output when `--shuffle` asks).
pub(crate) fn run_concat(p: &Prepared, inputs: &[&dyn adcat_store::Store], out: &Output, progress: &dyn adcat_format::Progress) -> Result<adcat_concat::Report, adcat_concat::ConcatError> {
    if p.copts.shuffle_seed.is_none() {
        return adcat_concat::concat(inputs, out.store(), &p.copts, progress);
    }
    let dir = out.scratch_dir();
    let scratch = out.scratch("order").map_err(|e| adcat_concat::ConcatError::Options(format!("{e:#}")))?;
    let stores = adcat_concat::shuffle::ShuffleStores { scratch: scratch.store(), out: out.store(), scratch_dir: Some(&dir) };
    adcat_concat::shuffle::concat_shuffled(inputs, stores, &p.copts, progress)
}

/// The cell selection of `--obs-filter` and `--obs-names` (or its list), if any.
fn obs_selection(filter: Option<&str>, file: Option<PathBuf>, list: Option<Vec<String>>) -> Result<Option<adcat_concat::select::ObsSelection>> {
    let names = match (list, file) {
        (Some(l), _) => Some(inputs::unique_names(l, "obs_names")?),
        (None, Some(f)) => Some(inputs::read_names(&f, "--obs-names")?),
        (None, None) => None,
    };
    let filter = filter.map(|f| adcat_concat::select::parse(f).map_err(|e| anyhow!("--obs-filter {f:?}: {e}"))).transpose()?;
    if filter.is_none() && names.is_none() {
        return Ok(None);
    }
    Ok(Some(adcat_concat::select::ObsSelection { filter, names: names.map(|n| std::sync::Arc::new(n.into_iter().collect())) }))
}

impl Prepared {
    pub fn open_inputs(&self, follow: bool) -> Result<Vec<Box<dyn adcat_store::Store>>> {
        let iopts = stores::InputOptions { follow_external: follow, max_memory: self.copts.write.max_memory, budget_flag: true };
        self.inputs.iter().map(|p| open_input(p, iopts)).collect()
    }

    /// Attribute an engine error: output errors name the output path.
    pub fn err(&self, e: adcat_concat::ConcatError) -> anyhow::Error {
        EngineFailure::wrap(e, &self.output.display().to_string())
    }
}

/// An engine error as one message naming the file (output errors name `output`), kept
/// typed inside `anyhow` so front ends can tell its kind. It has no source: the message
/// holds the sources' text already, and `{:#}` would repeat them.
#[derive(Debug)]
pub(crate) struct EngineFailure {
    /// The engine's error.
    pub error: adcat_concat::ConcatError,
    message: String,
}

impl EngineFailure {
    pub(crate) fn wrap(error: adcat_concat::ConcatError, output: &str) -> anyhow::Error {
        let message = match &error {
            adcat_concat::ConcatError::Output(inner) => format!("{output}: {inner}"),
            other => other.to_string(),
        };
        anyhow::Error::new(EngineFailure { error, message })
    }
}

impl std::fmt::Display for EngineFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineFailure {}

/// `concat`, or with `plan = Some(json)` the plan only.
fn concat_cmd(args: ConcatArgs, plan: Option<bool>, quiet: bool, verbose: bool, follow: bool) -> Result<()> {
    let p = prepare(args)?;
    let stores = p.open_inputs(follow)?;
    let refs: Vec<&dyn adcat_store::Store> = stores.iter().map(|s| s.as_ref()).collect();
    if let Some(json) = plan {
        let kind = p.format.kind();
        let plan = adcat_concat::plan::plan(&refs, kind, &p.copts).map_err(|e| p.err(e))?;
        print!("{}", planview::render(&plan, &p.inputs, &p.output, kind, &p.copts, json)?);
        return Ok(());
    }
    let out = Output::create(&p.output, p.format, p.force, &p.inputs)?;
    let bar = progress::Reporter::new(quiet, verbose);
    let report = run_concat(&p, &refs, &out, &bar).map_err(|e| p.err(e));
    bar.finish();
    let report = report?;
    out.commit(Some(report.shape))?;
    if let (Some(seed), false) = (p.copts.shuffle_seed, quiet) {
        eprintln!("adcat: cells shuffled with seed {seed}");
    }
    if p.copts.virtual_paths.is_some() && !quiet {
        let mapped: Vec<&str> = report.notes.iter().filter(|(_, n)| n.starts_with("virtual:")).map(|(p, _)| p.as_str()).collect();
        eprintln!("adcat: virtual (mapped from the inputs, no data copied): {}", if mapped.is_empty() { "nothing".to_owned() } else { mapped.join(", ") });
    }
    for w in &report.warnings {
        eprintln!("adcat: warning: {w}");
    }
    if (p.copts.off_names.is_some() || p.copts.off_key.is_some()) && !quiet {
        eprint!("{}", planview::off_match_lines(&report, &p.inputs, "adcat: "));
    }
    if !quiet {
        eprint!("{}", planview::kept_lines(&report, &p.inputs, "adcat: "));
    }
    Ok(())
}

/// What `adcat inspect --json` prints: the element tree and the provenance record
/// (`null` when there is none; `provenance_error` when it cannot be read).
pub(crate) fn inspect_document(s: &dyn adcat_store::Store, path: &std::path::Path) -> Result<serde_json::Value, adcat_format::FormatError> {
    let tree = inspect::inspect(&adcat_format::LegacyView::new(s))?;
    let mut doc = serde_json::json!({
        "location": path.display().to_string(),
        "format": s.kind().to_string(),
        "root": inspect::to_json(&tree),
    });
    match adcat_format::provenance::read(s) {
        Ok(p) => doc["provenance"] = serde_json::to_value(p).unwrap_or_default(),
        Err(e) => doc["provenance_error"] = e.to_string().into(),
    }
    Ok(doc)
}

fn run(cli: Cli) -> Result<()> {
    if cli.s3_concurrency == 0 {
        bail!("--s3-concurrency must be at least 1");
    }
    adcat_zarr::s3::set_concurrency(cli.s3_concurrency);
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| anyhow!("--threads {n}: {e}"))?;
    }
    match cli.command {
        Command::Convert { input, output, write } => {
            let opts = write_options(&write)?;
            let format = output_format(&output, write.zarr_format.parse().unwrap_or(3))?;
            check_codec(&opts, format, &output)?;
            let src = open_input(&input, stores::InputOptions { follow_external: cli.follow_external_links, max_memory: opts.max_memory, budget_flag: true })?;
            let out = Output::create(&output, format, write.force, std::slice::from_ref(&input))?;
            let bar = progress::Reporter::new(cli.quiet, cli.verbose);
            let r = adcat_format::convert(src.as_ref(), out.store(), &opts, &bar)
                .map_err(|e| anyhow!("{}: {}", if e.is_output() { output.display() } else { input.display() }, e));
            bar.finish();
            r?;
            let planned = adcat_format::validate::validate(&adcat_format::LegacyView::new(src.as_ref()), false);
            out.commit(planned.n_obs.zip(planned.n_vars))?;
            Ok(())
        }
        Command::Concat { args, job_dir: Some(dir), resume, .. } => job::concat_via_job(args, &dir, resume, cli.quiet, cli.verbose, cli.follow_external_links),
        Command::Concat { args, dry_run, json, .. } => concat_cmd(args, if dry_run { Some(json) } else { None }, cli.quiet, cli.verbose, cli.follow_external_links),
        Command::Append { args } => append::append_cmd(args, cli.quiet, cli.verbose, cli.follow_external_links),
        Command::Job(cmd) => job::run(cmd, cli.quiet, cli.verbose, cli.follow_external_links),
        Command::Plan { args, json } => concat_cmd(args, Some(json), cli.quiet, cli.verbose, cli.follow_external_links),
        Command::Generate { output, cells, genes, gene_offset, density, seed, shuffle_genes, dense, write } => {
            let opts = write_options(&write)?;
            if !(0.0..=1.0).contains(&density) {
                bail!("--density must be between 0 and 1");
            }
            let format = output_format(&output, write.zarr_format.parse().unwrap_or(3))?;
            let out = Output::create(&output, format, write.force, &[])?;
            let synth = synth::Synth { cells, genes, gene_offset, density, seed, shuffle_genes, dense };
            synth.write(out.store(), &opts).map_err(|e| anyhow!("{}: {}", output.display(), e))?;
            out.commit(Some((cells, genes)))
        }
        Command::Validate { path, quick } => {
            let s = open_input(&path, stores::InputOptions { follow_external: cli.follow_external_links, max_memory: WriteOptions::default().max_memory, budget_flag: false })?;
            let collection = adcat_format::collection::datasets(s.as_ref()).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            let report = match &collection {
                Some(names) => adcat_format::collection::validate(s.as_ref(), names, !quick),
                None => adcat_format::validate::validate(&adcat_format::LegacyView::new(s.as_ref()), !quick),
            };
            if report.is_valid() {
                let dim = |d: Option<u64>| d.map_or("?".to_owned(), |v| v.to_string());
                let what = match &collection {
                    Some(names) => format!("annbatch collection of {} AnnData datasets", names.len()),
                    None => "AnnData".to_owned(),
                };
                println!("{}: valid {what} ({} obs x {} var)", path.display(), dim(report.n_obs), dim(report.n_vars));
                if !report.references.is_empty() {
                    let names: Vec<&str> = report.references.iter().map(|(f, _)| f.as_str()).collect();
                    println!("{}: virtual datasets read {} file(s): {}", path.display(), names.len(), names.join(", "));
                }
                if !report.unchecked.is_empty() {
                    println!("{}: values of {} virtual dataset(s) not checked (they are read from those files only with --follow-external-links)", path.display(), report.unchecked.len());
                }
                return Ok(());
            }
            for p in &report.problems {
                println!("{}: {p}", path.display());
            }
            bail!("{}: {} problem(s) found (listed above)", path.display(), report.problems.len())
        }
        Command::Inspect { path, json } => {
            let s = open_input(&path, stores::InputOptions { follow_external: cli.follow_external_links, max_memory: WriteOptions::default().max_memory, budget_flag: false })?;
            if json {
                let doc = inspect_document(s.as_ref(), &path).map_err(|e| anyhow!("{}: {}", path.display(), e))?;
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                let tree = inspect::inspect(&adcat_format::LegacyView::new(s.as_ref())).map_err(|e| anyhow!("{}: {}", path.display(), e))?;
                print!("{}", inspect::render(&tree, &path.display().to_string(), s.kind()));
                let refs = adcat_format::refs::references(s.as_ref()).map_err(|e| anyhow!("{}: {}", path.display(), e))?;
                if !refs.is_empty() {
                    println!("\nvirtual datasets read:");
                    for (f, present) in adcat_format::refs::files(&refs) {
                        println!("  {f}{}", if present { "" } else { "  (MISSING)" });
                    }
                }
                match adcat_format::provenance::read(s.as_ref()) {
                    Ok(Some(p)) => print!("\nbuilt by:\n{}", adcat_format::provenance::describe(&p)),
                    Ok(None) => {}
                    Err(e) => println!("\nbuilt by: unreadable record ({e})"),
                }
            }
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "adcat", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
    }
}

/// Parse the command line; usage errors become one line (as every adcat error is),
/// help and version print as clap renders them. `Err(code)`: exit with `code`.
fn parse_cli(args: Vec<OsString>) -> Result<Cli, i32> {
    match Cli::try_parse_from(args) {
        Ok(c) => Ok(c),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(e.exit_code())
        }
        Err(e) => {
            let text = e.render().to_string();
            let parts: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:"))
                .collect();
            let msg = parts.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            eprintln!("adcat: error: {msg} (see adcat --help)");
            Err(2)
        }
    }
}

/// The `adcat` command with arguments `args` (the program name first); returns the
/// exit status. Installs the SIGINT/SIGTERM handlers (see [`guard`]).
pub fn run_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match parse_cli(args.into_iter().collect()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = guard::install() {
        eprintln!("adcat: error: cannot install signal handlers: {e}");
        return 1;
    }
    let result = run(cli);
    // An interrupted job has unwound and removed its partial output by now. (A signal
    // that arrives after the output was complete and in place changes nothing.)
    if let (Some(sig), Err(_)) = (guard::interrupted(), &result) {
        eprintln!("{}", guard::interrupt_message(sig));
        return 128 + sig;
    }
    if let Err(e) = result {
        // One line: the chain joined, so the file and element path come first.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("adcat: error: {msg}");
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12").is_err(), "below 1MiB");
    }

    #[test]
    fn compressions() {
        assert_eq!(parse_compression("gzip:6").unwrap(), Compression::Gzip(6));
        assert_eq!(parse_compression("zstd").unwrap(), Compression::Zstd(3));
        assert!(parse_compression("gzip:99").is_err());
        assert!(parse_compression("brotli").is_err());
        for c in [Compression::None, Compression::Gzip(6), Compression::Lzf, Compression::Zstd(3), Compression::Blosc { cname: "zstd".into(), clevel: 5, shuffle: 1 }] {
            assert_eq!(parse_compression(&compression_arg(&c)).unwrap(), c);
        }
    }
}
