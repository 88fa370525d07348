//! Input lists at scale: `KEY=PATH` arguments, glob patterns, and `--inputs-from FILE`.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One input store, with the key it was given (for `--label` / `--index-unique`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The store's path.
    pub path: PathBuf,
    /// `KEY` of a `KEY=PATH` argument or a `KEY<TAB>PATH` line.
    pub key: Option<String>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// One command-line argument: an existing path as is; else `KEY=PATH`; else a glob
/// pattern (sorted matches, at least one); else a path (reported missing when opened).
fn expand(arg: &str, out: &mut Vec<Input>) -> Result<()> {
    if Path::new(arg).exists() {
        out.push(Input { path: arg.into(), key: None });
        return Ok(());
    }
    if let Some((k, p)) = arg.split_once('=') {
        if !k.is_empty() && !k.contains('/') {
            if has_glob(p) && !Path::new(p).exists() {
                bail!("{arg}: a KEY=PATH argument takes one path, not a pattern");
            }
            out.push(Input { path: p.into(), key: Some(k.to_owned()) });
            return Ok(());
        }
    }
    if has_glob(arg) {
        let mut matches: Vec<PathBuf> = glob::glob(arg).with_context(|| format!("{arg}: not a valid glob pattern"))?.filter_map(std::result::Result::ok).collect();
        if matches.is_empty() {
            bail!("{arg}: the pattern matches no file");
        }
        matches.sort();
        out.extend(matches.into_iter().map(|path| Input { path, key: None }));
        return Ok(());
    }
    out.push(Input { path: arg.into(), key: None });
    Ok(())
}

/// A list of names, one per line, verbatim (a trailing `\r` removed; `-` reads standard
/// input), as `--var-names` takes it. Empty lines and repeated names are refused with
/// their line numbers: the list becomes an index that must be unique.
pub fn read_names(file: &Path, option: &str) -> Result<Vec<String>> {
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).with_context(|| format!("{option}: reading names from standard input"))?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("{option} {}: cannot read the names", file.display()))?
    };
    let name = if file == Path::new("-") { "standard input".to_owned() } else { file.display().to_string() };
    // Editors on Windows start UTF-8 files with a byte-order mark; it is not a name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        bail!("{option} {name}: holds no names");
    }
    let mut seen = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (i, line) in body.split('\n').enumerate() {
        let n = line.strip_suffix('\r').unwrap_or(line);
        if n.is_empty() {
            bail!("{option} {name}: line {} is empty (one name per line)", i + 1);
        }
        if let Some(first) = seen.insert(n.to_owned(), i + 1) {
            bail!("{option} {name}: {n:?} on line {} repeats line {first}; names must be unique", i + 1);
        }
        out.push(n.to_owned());
    }
    Ok(out)
}

/// `names` if no name repeats; else an error naming the first repeat and its positions.
pub fn unique_names(names: Vec<String>, option: &str) -> Result<Vec<String>> {
    let mut seen = std::collections::HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if let Some(first) = seen.insert(n.as_str(), i) {
            bail!("{option}: {n:?} at position {i} repeats position {first}; names must be unique");
        }
    }
    if names.is_empty() {
        bail!("{option}: holds no names");
    }
    Ok(names)
}

/// Parse an inputs file: one path per line, or `KEY<TAB>PATH`; blank lines and lines
/// starting with `#` are skipped. Relative paths are relative to the file's directory
/// (`-` reads standard input, relative to the working directory).
fn read_list(file: &Path, out: &mut Vec<Input>) -> Result<()> {
    let (text, base) = if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the input list from standard input")?;
        (s, PathBuf::new())
    } else {
        let s = std::fs::read_to_string(file).with_context(|| format!("{}: cannot read the input list", file.display()))?;
        (s, file.parent().map(Path::to_path_buf).unwrap_or_default())
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (key, p) = match line.split_once('\t') {
            Some((k, p)) if !k.is_empty() => (Some(k.to_owned()), p),
            Some(_) => bail!("{}:{}: empty key before the tab", file.display(), n + 1),
            None => (None, line),
        };
        let p = PathBuf::from(p.trim());
        let path = if p.is_relative() && !crate::stores::is_url(&p) { base.join(p) } else { p };
        out.push(Input { path, key });
    }
    Ok(())
}

/// All inputs, in order: the arguments, then the list file's lines.
pub fn resolve(args: &[String], inputs_from: Option<&Path>) -> Result<Vec<Input>> {
    let mut out = vec![];
    for a in args {
        expand(a, &mut out)?;
    }
    if let Some(f) = inputs_from {
        read_list(f, &mut out)?;
    }
    if out.is_empty() {
        bail!("no inputs: give paths, KEY=PATH arguments, patterns or --inputs-from FILE");
    }
    Ok(out)
}

/// Keys from the inputs (all or none must have one; they may not be combined with
/// `--keys`).
pub fn keys(inputs: &[Input], flag: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
    let given = inputs.iter().filter(|i| i.key.is_some()).count();
    match (given, flag) {
        (0, f) => Ok(f),
        (_, Some(_)) => bail!("keys given twice: use either KEY=PATH inputs or --keys"),
        (n, None) if n == inputs.len() => Ok(Some(inputs.iter().filter_map(|i| i.key.clone()).collect())),
        (n, None) => {
            let missing = inputs.iter().find(|i| i.key.is_none()).map(|i| i.path.display().to_string()).unwrap_or_default();
            bail!("{n} of {} inputs have a KEY=; give every input a key (e.g. {missing})", inputs.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lists() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("genes.txt");
        std::fs::write(&f, "B\r\nA\nC\n").unwrap();
        assert_eq!(read_names(&f, "--var-names").unwrap(), ["B", "A", "C"]);
        std::fs::write(&f, "B\nA\nB\n").unwrap();
        assert!(read_names(&f, "--var-names").unwrap_err().to_string().contains("\"B\" on line 3 repeats line 1"));
        std::fs::write(&f, "B\n\nA\n").unwrap();
        assert!(read_names(&f, "--var-names").unwrap_err().to_string().contains("line 2 is empty"));
        std::fs::write(&f, "").unwrap();
        assert!(read_names(&f, "--var-names").unwrap_err().to_string().contains("holds no names"));
    }

    #[test]
    fn arguments_lists_and_patterns() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b.h5ad", "a.h5ad", "c=d.h5ad"] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        let p = |n: &str| d.path().join(n).display().to_string();
        // An existing file with '=' in its name stays a path.
        let got = resolve(&[p("c=d.h5ad"), format!("k={}", p("a.h5ad"))], None).unwrap();
        assert_eq!(got[0], Input { path: p("c=d.h5ad").into(), key: None });
        assert_eq!(got[1], Input { path: p("a.h5ad").into(), key: Some("k".into()) });
        let got = resolve(&[format!("{}/[ab].h5ad", d.path().display())], None).unwrap();
        assert_eq!(got.iter().map(|i| i.path.clone()).collect::<Vec<_>>(), vec![PathBuf::from(p("a.h5ad")), p("b.h5ad").into()]);
        assert!(resolve(&[format!("{}/*.zarr", d.path().display())], None).is_err());
        let list = d.path().join("list.tsv");
        std::fs::write(&list, "# inputs\nx\tb.h5ad\n\ny\ta.h5ad\n").unwrap();
        let got = resolve(&[], Some(&list)).unwrap();
        assert_eq!(keys(&got, None).unwrap(), Some(vec!["x".into(), "y".into()]));
        assert!(keys(&got, Some(vec!["p".into(), "q".into()])).is_err());
        let mixed = vec![Input { path: "a".into(), key: Some("k".into()) }, Input { path: "b".into(), key: None }];
        assert!(keys(&mixed, None).is_err());
    }
}
