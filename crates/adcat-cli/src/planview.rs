//! Rendering a concatenation plan (`adcat plan`, `adcat concat --dry-run`).

use adcat_concat::plan::Plan;
use adcat_concat::ConcatOptions;
use adcat_format::inspect::human_bytes;
use adcat_store::StoreKind;
use anyhow::Result;
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn dims(v: &[u64]) -> String {
    format!("({})", v.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}

/// One line per input and part: how its off-axis names met the output's; one line in
/// all when every input has exactly the output's names.
pub fn off_match_lines(report: &adcat_concat::Report, inputs: &[PathBuf], prefix: &str) -> String {
    let mut out = String::new();
    for part in ["", "raw"] {
        let rows: Vec<_> = report.off_match.iter().filter(|m| m.part == part).collect();
        let Some(first) = rows.first() else { continue };
        let label = if part.is_empty() { String::new() } else { format!("{part}: ") };
        if rows.iter().all(|m| m.filled == 0 && m.dropped == 0 && m.matched == first.matched) {
            out.push_str(&format!("{prefix}{label}every input has the output's {} names\n", first.matched));
            continue;
        }
        for m in rows {
            let name = inputs.get(m.input).map_or_else(|| format!("input {}", m.input), |p| p.display().to_string());
            out.push_str(&format!("{prefix}{label}{name}: {} matched, {} filled, {} dropped\n", m.matched, m.filled, m.dropped));
        }
    }
    out
}

/// One line per input with a cell selection: rows kept of all.
pub fn kept_lines(report: &adcat_concat::Report, inputs: &[PathBuf], prefix: &str) -> String {
    let lines = |v: &[(u64, u64)], what: &str| -> String {
        v.iter().zip(inputs).map(|((kept, total), p)| format!("{prefix}{}: kept {kept} of {total} {what}\n", p.display())).collect()
    };
    lines(&report.kept, "cells") + &lines(&report.kept_var, "genes")
}

/// The plan as text (`json = false`) or pretty JSON.
pub fn render(p: &Plan, inputs: &[PathBuf], output: &Path, kind: StoreKind, opts: &ConcatOptions, json: bool) -> Result<String> {
    let (n_obs, n_vars) = p.report.shape;
    let axis = match opts.axis {
        adcat_concat::Axis::Obs => "obs",
        adcat_concat::Axis::Var => "var",
    };
    let join = match opts.join {
        adcat_concat::Join::Inner => "inner",
        adcat_concat::Join::Outer => "outer",
    };
    if json {
        let doc = serde_json::json!({
            "inputs": inputs.iter().map(|i| i.display().to_string()).collect::<Vec<_>>(),
            "output": output.display().to_string(),
            "format": kind.to_string(),
            "axis": axis,
            "join": join,
            "shape": [n_obs, n_vars],
            "decisions": p.report.notes.iter().map(|(path, what)| serde_json::json!({"path": path, "decision": what})).collect::<Vec<_>>(),
            "elements": p.elements.iter().map(|e| serde_json::json!({
                "path": format!("/{}", e.path),
                "encoding": e.encoding,
                "shape": e.shape,
                "dtype": e.dtype,
                "bytes": e.bytes,
            })).collect::<Vec<_>>(),
            "estimated_output_bytes": p.output_bytes,
            "max_memory_bytes": opts.write.max_memory,
            "resident_bytes": p.resident_bytes,
            "estimated_peak_memory_bytes": p.peak_bytes,
            "off_axis_match": p.report.off_match.iter().map(|m| serde_json::json!({
                "input": inputs.get(m.input).map(|i| i.display().to_string()),
                "part": m.part,
                "matched": m.matched,
                "filled": m.filled,
                "dropped": m.dropped,
            })).collect::<Vec<_>>(),
            "kept_var": p.report.kept_var.iter().zip(inputs).map(|((kept, total), i)| serde_json::json!({"input": i.display().to_string(), "kept": kept, "total": total})).collect::<Vec<_>>(),
            "kept": p.report.kept.iter().zip(inputs).map(|((kept, total), i)| serde_json::json!({"input": i.display().to_string(), "kept": kept, "total": total})).collect::<Vec<_>>(),
            "warnings": p.report.warnings,
            "job": p.report.job.to_json(),
        });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&doc)?));
    }
    let mut out = String::new();
    writeln!(out, "plan: {} input(s) -> {} ({kind}), axis {axis}, {join} join", inputs.len(), output.display())?;
    writeln!(out, "output: {n_obs} obs x {n_vars} var")?;
    writeln!(out, "\nhow each element is combined:")?;
    let w = p.report.notes.iter().map(|(path, _)| path.len()).max().unwrap_or(0);
    for (path, what) in &p.report.notes {
        writeln!(out, "  {path:<w$}  {what}")?;
    }
    let (_, off) = if opts.axis == adcat_concat::Axis::Obs { ("obs", "var") } else { ("var", "obs") };
    writeln!(out, "\n{off} names of each input (matched / filled / dropped):")?;
    out.push_str(&off_match_lines(&p.report, inputs, "  "));
    if !p.report.kept.is_empty() || !p.report.kept_var.is_empty() {
        writeln!(out, "\nkept by the selection:")?;
        out.push_str(&kept_lines(&p.report, inputs, "  "));
    }
    writeln!(out, "\noutput elements:")?;
    let w = p.elements.iter().map(|e| e.path.len() + 1).max().unwrap_or(0);
    for e in &p.elements {
        let path = format!("/{}", e.path);
        let dtype = e.dtype.as_deref().map(|d| format!(" {d}")).unwrap_or_default();
        writeln!(out, "  {path:<w$}  [{}] {}{dtype}  {}", e.encoding, dims(&e.shape), human_bytes(e.bytes))?;
    }
    writeln!(out, "\nestimated output: {} uncompressed (sparse parts at their largest)", human_bytes(p.output_bytes))?;
    writeln!(
        out,
        "memory: peak at most about {} (held whole: {} of off-axis names and tables; data moves in blocks within --max-memory {})",
        human_bytes(p.peak_bytes),
        human_bytes(p.resident_bytes),
        human_bytes(opts.write.max_memory)
    )?;
    for wn in &p.report.warnings {
        writeln!(out, "warning: {wn}")?;
    }
    writeln!(out, "nothing was written")?;
    Ok(out)
}
