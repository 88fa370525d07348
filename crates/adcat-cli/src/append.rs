//! `adcat append`: grow a store in place (the engine's [`adcat_concat::append`]) on a
//! shadow copy that replaces the store only when complete and verified.

use crate::stores::Output;
use crate::{inputs, planview, progress, prepare_inputs, CombineArgs, ConcatArgs, Prepared, WriteArgs};
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
    #[command(flatten)]
    combine: CombineArgs,
    /// Grow obsp block-diagonally (as `concat --pairwise`): the new inputs' block after
    /// the store's.
    #[arg(long)]
    pub pairwise: bool,
    /// Match the new inputs' genes by this var column (as `concat --var-key`); the
    /// store's by its index, which must be in the column's terms.
    #[arg(long, value_name = "COLUMN")]
    pub var_key: Option<String>,
    /// Add only the new cells whose obs columns pass EXPR (as `concat --obs-filter`).
    #[arg(long, value_name = "EXPR")]
    pub obs_filter: Option<String>,
    /// Add only the new inputs' genes whose var columns pass EXPR (as `concat
    /// --var-filter`); the store's genes stay.
    #[arg(long, value_name = "EXPR")]
    pub var_filter: Option<String>,
    /// Add only the new cells named in FILE (as `concat --obs-names`).
    #[arg(long, value_name = "FILE")]
    pub obs_names: Option<PathBuf>,
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
            combine: self.combine,
            var_key: self.var_key,
            obs_filter: self.obs_filter,
            var_filter: self.var_filter,
            obs_names: self.obs_names,
            obs_names_list: None,
            var_names_list: None,
            pairwise: self.pairwise,
            obs_chunk: None,
            compact_indices: false,
            shuffle: false,
            seed: None,
            layout: "anndata".into(),
            virtual_: false,
            virtual_paths: "auto".into(),
            dataset_size: "20GiB".into(),
            task_size: "1GiB".into(),
            write: WriteArgs { zarr_format: "3".into(), compression: None, max_memory: self.max_memory, shard_size: None, force: false },
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
    let combine = args.combine.clone();
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
        Failure::Engine(e @ adcat_concat::ConcatError::Refused { .. }) => {
            anyhow::anyhow!("{:#}. To build the result in a new store instead: {}", p.err(e), instead(&p, &combine, follow))
        }
        Failure::Engine(e) => p.err(e),
        Failure::Other(e) => e,
    })?;
    for w in &report.warnings {
        eprintln!("adcat: warning: {w}");
    }
    if !quiet {
        eprint!("{}", planview::kept_lines(&report, &p.inputs, "adcat: "));
        eprint!("{}", planview::off_match_lines(&report, &p.inputs, "adcat: "));
        eprintln!("adcat: {}: now {} obs x {} var", p.output.display(), report.shape.0, report.shape.1);
    }
    Ok(())
}

/// The `adcat concat` command that builds in a new store what a refused append would
/// have made: the inputs the store was built from, with their keys (its provenance
/// record, when complete and the files are there), else the store as one input; then
/// the new inputs and the same options.
fn instead(p: &Prepared, c: &CombineArgs, follow: bool) -> String {
    let mut words: Vec<String> = vec!["adcat".into(), "concat".into()];
    let recorded = recorded_inputs(p, follow);
    let first_key = recorded.as_ref().map_or(1, Vec::len);
    // (key, path) of every input: the recorded ones, or the store as input "0".
    let mut all: Vec<(String, String)> = recorded.unwrap_or_else(|| vec![("0".into(), p.output.display().to_string())]);
    for (i, path) in p.inputs.iter().enumerate() {
        let key = p.copts.keys.as_ref().and_then(|k| k.get(i).cloned()).unwrap_or_else(|| (first_key + i).to_string());
        all.push((key, path.display().to_string()));
    }
    words.extend(input_words(&all, c.label.is_some() || c.index_unique.is_some() || c.keys.is_some()));
    let ext = if p.output.is_dir() { "zarr" } else { "h5ad" };
    words.extend(["-o".into(), format!("NEW.{ext}")]);
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            words.extend([flag.to_owned(), quote(&v)]);
        }
    };
    opt("--join", (c.join == "outer").then(|| c.join.clone()));
    opt("--merge", c.merge.clone());
    opt("--uns-merge", c.uns_merge.clone());
    opt("--label", c.label.clone());
    opt("--index-unique", c.index_unique.clone());
    opt("--fill-value", c.fill_value.map(|f| f.to_string()));
    opt("--var-names", c.var_names.as_ref().map(|f| f.display().to_string()));
    opt("--var-key", p.copts.off_key.clone());
    if p.copts.pairwise {
        words.push("--pairwise".into());
    }
    let mut cmd = words.join(" ");
    if p.copts.obs_select.is_some() || p.copts.var_filter.is_some() {
        // concat would select among the store's cells and genes too.
        cmd.push_str(" (with the new inputs selected first: --obs-filter/--obs-names/--var-filter would apply to every input)");
    }
    cmd
}

/// The inputs as `concat` arguments: plain paths, with their keys (when `keyed`) as
/// `--keys` or, when a key holds a comma, as KEY=PATH (unless a key holds `=` or `/`,
/// which neither form carries: then the paths alone).
fn input_words(all: &[(String, String)], keyed: bool) -> Vec<String> {
    let paths = all.iter().map(|(_, path)| quote(path));
    if !keyed {
        return paths.collect();
    }
    if all.iter().all(|(k, _)| !k.contains(',')) {
        let keys = all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(",");
        return paths.chain(["--keys".to_owned(), quote(&keys)]).collect();
    }
    if all.iter().all(|(k, _)| !k.contains(['=', '/'])) {
        return all.iter().map(|(k, path)| quote(&format!("{k}={path}"))).collect();
    }
    paths.collect()
}

/// (key, path) of every input the store's provenance record lists, when the record is
/// complete, describes the store as it is, was built with the options given now, and
/// every file is still there.
fn recorded_inputs(p: &Prepared, follow: bool) -> Option<Vec<(String, String)>> {
    let opts = crate::stores::InputOptions { follow_external: follow, max_memory: p.copts.write.max_memory, budget_flag: true };
    let store = crate::stores::open_input(&p.output, opts).ok()?;
    let record = adcat_format::provenance::read(store.as_ref()).ok()??;
    let index = store.attr("obs", "_index").ok()??.as_str().map(str::to_owned)?;
    // The index is an array, or a group (nullable strings) holding `values`.
    let meta = |p: String| store.array_meta(&p).ok();
    let n_obs = meta(format!("obs/{index}")).or_else(|| meta(format!("obs/{index}/values")))?.shape.first().copied()?;
    let options = p.copts.provenance_options();
    let complete = record.omitted_steps == 0
        && record.history.iter().all(|s| s.options == options)
        && record.history.last().is_some_and(|s| s.shape[0] == n_obs)
        && record.history.iter().flat_map(|s| &s.inputs).all(|i| i.kept_obs.is_none() && i.kept_vars.is_none() && std::path::Path::new(&i.path).exists())
        && record.history.iter().all(|s| s.omitted_inputs == 0);
    complete.then(|| record.history.iter().flat_map(|s| &s.inputs).map(|i| (i.key.clone(), i.path.clone())).collect())
}

/// `s` as one shell word.
fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
