//! `adcat append`: grow a store in place (the engine's [`adcat_concat::append`]) on a
//! shadow copy that replaces the store only when complete and verified.

use crate::stores::Output;
use crate::{inputs, planview, progress, prepare_inputs, ConcatArgs, Prepared, WriteArgs};
use anyhow::Result;
use std::path::PathBuf;

/// The arguments of `append`: those of `concat` that decide the result.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct AppendArgs {
    /// The store to grow: an .h5ad file or a .zarr directory (written by adcat or anndata).
    pub store: PathBuf,
    /// Input stores to add, in order: paths, KEY=PATH, or glob patterns (as `concat`).
    #[arg(required_unless_present = "inputs_from", value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Read more inputs from FILE (`-`: standard input), as `concat --inputs-from`.
    #[arg(long, value_name = "FILE")]
    pub inputs_from: Option<PathBuf>,
    /// How to combine var: inner (every input must have the store's genes) or outer
    /// (missing genes filled; new genes added after the store's).
    #[arg(long, default_value = "inner", value_parser = ["inner", "outer"])]
    join: String,
    /// Strategy for var columns, varm and varp, over the store and the new inputs.
    #[arg(long, value_parser = ["same", "unique", "first", "only"])]
    merge: Option<String>,
    /// Strategy for uns, over the store and the new inputs.
    #[arg(long, value_parser = ["same", "unique", "first", "only"])]
    uns_merge: Option<String>,
    /// The store's label column (as given to `concat --label`): the new cells get their
    /// inputs' keys.
    #[arg(long)]
    label: Option<String>,
    /// Keys of the new inputs (default: continuing the store's numbering).
    #[arg(long, value_delimiter = ',')]
    keys: Option<Vec<String>>,
    /// Make the new cells' names unique: NAME + SEP + KEY.
    #[arg(long, value_name = "SEP")]
    index_unique: Option<String>,
    /// The store's var names (one per line): new genes are dropped, missing ones filled.
    #[arg(long, value_name = "FILE")]
    var_names: Option<PathBuf>,
    /// Value for entries missing after an outer join (default 0 sparse, NaN dense).
    #[arg(long, allow_negative_numbers = true)]
    fill_value: Option<f64>,
    /// Do not add the append to the store's provenance record.
    #[arg(long)]
    no_provenance: bool,
    /// Memory budget for data in flight, e.g. 512MiB, 2GiB.
    #[arg(long, default_value = "1GiB")]
    max_memory: String,
}

impl AppendArgs {
    /// The same choices as `concat` arguments writing to the store.
    fn into_concat(self) -> ConcatArgs {
        ConcatArgs {
            inputs: self.inputs,
            inputs_from: self.inputs_from,
            output: self.store,
            axis: "obs".into(),
            join: self.join,
            merge: self.merge,
            uns_merge: self.uns_merge,
            label: self.label,
            keys: self.keys,
            index_unique: self.index_unique,
            var_names: self.var_names,
            var_key: None,
            obs_filter: None,
            var_filter: None,
            obs_names: None,
            obs_names_list: None,
            var_names_list: None,
            fill_value: self.fill_value,
            pairwise: false,
            task_size: "1GiB".into(),
            no_provenance: self.no_provenance,
            write: WriteArgs { zarr_format: "3".into(), compression: None, max_memory: self.max_memory, force: false },
        }
    }
}

/// Why an append failed: the engine (typed), or the wiring around it (the copy, the swap).
pub(crate) enum Failure {
    /// The engine refused or failed.
    Engine(adcat_concat::ConcatError),
    /// Copying, checking or swapping the store failed.
    Other(anyhow::Error),
}

/// Append the opened `inputs` to the store `p.output` (see the module documentation).
pub(crate) fn run(p: &Prepared, inputs: &[Box<dyn adcat_store::Store>], follow: bool, progress: &dyn adcat_format::Progress) -> Result<adcat_concat::Report, Failure> {
    let shadow = Output::shadow(&p.output, &p.inputs).map_err(Failure::Other)?;
    let opts = crate::stores::InputOptions { follow_external: follow, max_memory: p.copts.write.max_memory, budget_flag: true };
    let original = crate::stores::open_input(&p.output, opts).map_err(Failure::Other)?;
    let refs: Vec<&dyn adcat_store::Store> = inputs.iter().map(|s| s.as_ref()).collect();
    let scratch = shadow.scratch("delta").map_err(Failure::Other)?;
    let parts = adcat_concat::append::AppendStores { store: original.as_ref(), target: shadow.store(), scratch: scratch.store() };
    let report = adcat_concat::append::append(parts, &refs, &p.copts, progress).map_err(Failure::Engine)?;
    drop(scratch);
    drop(original);
    shadow.commit(Some(report.shape)).map_err(Failure::Other)?;
    Ok(report)
}

/// Run `adcat append`.
pub(crate) fn append_cmd(args: AppendArgs, quiet: bool, verbose: bool, follow: bool) -> Result<()> {
    let args = args.into_concat();
    let specs = inputs::resolve(&args.inputs, args.inputs_from.as_deref())?;
    // The format is the store's; prepare_inputs only needs one to check options.
    let p = prepare_inputs(specs, args, Some(crate::stores::OutFormat::H5ad))?;
    let inputs = p.open_inputs(follow)?;
    crate::guard::set_interrupt_note(format!("{} is unchanged", p.output.display()));
    let bar = progress::Reporter::new(quiet, verbose);
    let report = run(&p, &inputs, follow, &bar);
    bar.finish();
    let report = report.map_err(|f| match f {
        Failure::Engine(e) => p.err(e),
        Failure::Other(e) => e,
    })?;
    for w in &report.warnings {
        eprintln!("adcat: warning: {w}");
    }
    if !quiet {
        eprint!("{}", planview::off_match_lines(&report, &p.inputs, "adcat: "));
        eprintln!("adcat: {}: now {} obs x {} var", p.output.display(), report.shape.0, report.shape.1);
    }
    Ok(())
}
