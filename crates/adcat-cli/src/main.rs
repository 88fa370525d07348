//! `adcat`: concatenate and convert AnnData stores (.h5ad, .zarr) out of core.

mod guard;
mod stores;
mod synth;

use adcat_format::{inspect, Progress, WriteOptions};
use adcat_store::Compression;
use anyhow::{anyhow, bail, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use stores::{open_input, output_format, Output};

// Blocks of tens of MiB are allocated and freed for every element; mimalloc keeps freed
// pages for reuse where glibc returns them to the kernel and faults them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "adcat", version, about = "Concatenate and convert AnnData stores (.h5ad, .zarr) out of core")]
struct Cli {
    /// No progress display.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Worker threads for compression and encoding (default: one per core).
    #[arg(short = 'j', long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
struct WriteArgs {
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
    /// Overwrite an existing OUTPUT (never an input).
    #[arg(long)]
    force: bool,
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
        /// Input stores, in order.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output path; .h5ad -> HDF5, .zarr -> Zarr.
        #[arg(short, long)]
        output: PathBuf,
        /// Axis to concatenate along: obs (0) or var (1).
        #[arg(long, default_value = "obs", value_parser = ["obs", "var", "0", "1"])]
        axis: String,
        /// How to combine the other axis: inner (intersection) or outer (union).
        #[arg(long, default_value = "inner", value_parser = ["inner", "outer"])]
        join: String,
        /// Strategy for off-axis annotations (var columns, varm, varp).
        #[arg(long, value_parser = ["same", "unique", "first", "only"])]
        merge: Option<String>,
        /// Strategy for uns.
        #[arg(long, value_parser = ["same", "unique", "first", "only"])]
        uns_merge: Option<String>,
        /// Add a categorical column with this name recording each cell's input.
        #[arg(long)]
        label: Option<String>,
        /// Names of the inputs for --label and --index-unique (default 0,1,...).
        #[arg(long, value_delimiter = ',')]
        keys: Option<Vec<String>>,
        /// Make names along the axis unique: NAME + SEP + KEY.
        #[arg(long, value_name = "SEP")]
        index_unique: Option<String>,
        /// Value for entries missing after an outer join (default 0 sparse, NaN dense).
        #[arg(long, allow_negative_numbers = true)]
        fill_value: Option<f64>,
        /// Concatenate obsp (varp for --axis var) block-diagonally.
        #[arg(long)]
        pairwise: bool,
        #[command(flatten)]
        write: WriteArgs,
    },
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
    /// Show the element tree: encodings, shapes, dtypes, nnz, chunking and codecs.
    Inspect {
        /// .h5ad file or .zarr directory.
        path: PathBuf,
    },
}

/// Parse sizes like `512MiB`, `2GiB`, `1G`, `1000000`.
fn parse_size(s: &str) -> Result<u64> {
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
    let v = (n * mult as f64) as u64;
    if v < (1 << 20) {
        bail!("invalid size {s:?}: the memory budget must be at least 1MiB");
    }
    Ok(v)
}

fn parse_compression(s: &str) -> Result<Compression> {
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

fn write_options(w: &WriteArgs) -> Result<WriteOptions> {
    Ok(WriteOptions {
        compression: w.compression.as_deref().map(parse_compression).transpose().map_err(|e| anyhow!("--compression: {e}"))?,
        max_memory: parse_size(&w.max_memory).map_err(|e| anyhow!("--max-memory: {e}"))?,
        ..WriteOptions::default()
    })
}

/// indicatif progress bar fed by the format layer.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn total_bytes(&self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn element(&self, path: &str) {
        self.0.set_message(format!("/{path}"));
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

fn progress_bar(quiet: bool) -> Bar {
    if quiet || !std::io::stderr().is_terminal() {
        return Bar(ProgressBar::hidden());
    }
    let pb = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    Bar(pb)
}

fn run(cli: Cli) -> Result<()> {
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
            if opts.compression.as_ref().is_some_and(|c| matches!(c, Compression::Lzf) && format != stores::OutFormat::H5ad) {
                bail!("{}: lzf compression is only available for .h5ad output", output.display());
            }
            if opts.compression.as_ref().is_some_and(|c| matches!(c, Compression::Zstd(_) | Compression::Blosc { .. }) && format == stores::OutFormat::H5ad) {
                bail!("{}: zstd and blosc need an HDF5 plugin to read; use gzip or lzf for .h5ad output", output.display());
            }
            let src = open_input(&input)?;
            let out = Output::create(&output, format, write.force, std::slice::from_ref(&input))?;
            let bar = progress_bar(cli.quiet);
            adcat_format::convert(src.as_ref(), out.store(), &opts, &bar).map_err(|e| anyhow!("{}: {}", input.display(), e))?;
            bar.0.finish_and_clear();
            let planned = adcat_format::validate::validate(src.as_ref(), false);
            out.commit(planned.n_obs.zip(planned.n_vars))?;
            Ok(())
        }
        Command::Concat { inputs, output, axis, join, merge, uns_merge, label, keys, index_unique, fill_value, pairwise, write } => {
            let opts = write_options(&write)?;
            let format = output_format(&output, write.zarr_format.parse().unwrap_or(3))?;
            let parse_strategy = |s: Option<String>| s.map(|x| x.parse::<adcat_concat::Strategy>().map_err(|e| anyhow!(e))).transpose();
            let copts = adcat_concat::ConcatOptions {
                axis: if axis == "var" || axis == "1" { adcat_concat::Axis::Var } else { adcat_concat::Axis::Obs },
                join: if join == "outer" { adcat_concat::Join::Outer } else { adcat_concat::Join::Inner },
                merge: parse_strategy(merge)?,
                uns_merge: parse_strategy(uns_merge)?,
                label,
                keys,
                index_unique,
                fill_value,
                pairwise,
                write: opts,
            };
            if let Some(k) = &copts.keys {
                if k.len() < inputs.len() {
                    bail!("--keys has {} names for {} inputs", k.len(), inputs.len());
                }
            }
            let stores: Vec<Box<dyn adcat_store::Store>> = inputs.iter().map(|p| open_input(p)).collect::<Result<_>>()?;
            let refs: Vec<&dyn adcat_store::Store> = stores.iter().map(|s| s.as_ref()).collect();
            let out = Output::create(&output, format, write.force, &inputs)?;
            let bar = progress_bar(cli.quiet);
            let report = adcat_concat::concat(&refs, out.store(), &copts, &bar).map_err(|e| match e {
                adcat_concat::ConcatError::Output(inner) => anyhow!("{}: {inner}", output.display()),
                other => anyhow!("{other}"),
            })?;
            bar.0.finish_and_clear();
            out.commit(Some(report.shape))?;
            for w in &report.warnings {
                eprintln!("adcat: warning: {w}");
            }
            Ok(())
        }
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
            let s = open_input(&path)?;
            let report = adcat_format::validate::validate(s.as_ref(), !quick);
            if report.is_valid() {
                let dim = |d: Option<u64>| d.map_or("?".to_owned(), |v| v.to_string());
                println!("{}: valid AnnData ({} obs x {} var)", path.display(), dim(report.n_obs), dim(report.n_vars));
                return Ok(());
            }
            for p in &report.problems {
                println!("{}: {p}", path.display());
            }
            bail!("{}: {} problem(s) found", path.display(), report.problems.len())
        }
        Command::Inspect { path } => {
            let s = open_input(&path)?;
            let tree = inspect::inspect(s.as_ref()).map_err(|e| anyhow!("{}: {}", path.display(), e))?;
            print!("{}", inspect::render(&tree, &path.display().to_string(), s.kind()));
            Ok(())
        }
    }
}

/// Parse the command line; usage errors become one line (as every adcat error is),
/// help and version print as clap renders them.
fn parse_cli() -> Cli {
    match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(),
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
            std::process::exit(2);
        }
    }
}

fn main() {
    let cli = parse_cli();
    if let Err(e) = guard::install() {
        eprintln!("adcat: error: cannot install signal handlers: {e}");
        std::process::exit(1);
    }
    let result = run(cli);
    // An interrupted job has unwound and removed its partial output by now.
    if let Some(sig) = guard::interrupted() {
        eprintln!("adcat: interrupted by {}; partial output removed", guard::signal_name(sig));
        std::process::exit(128 + sig);
    }
    if let Err(e) = result {
        // One line: the chain joined, so the file and element path come first.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("adcat: error: {msg}");
        std::process::exit(1);
    }
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
    }
}
