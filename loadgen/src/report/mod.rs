//! `loadgen report`: Markdown with SVG plots from run result files, one
//! input beside another.
//!
//! Layout:
//! - `input`: reading result files (schema check, display names) and the
//!   figures derived from a run (rates, per-connection memory).
//! - `markdown`: the document: warnings, how it ran, summary, plots, phases.
//! - `charts`: which plots there are and the lines each draws from the runs.
//! - `plot`: one line chart as SVG (plotters, no font features: the SVG
//!   holds `<text>` elements and the viewer picks the font).
//! - `format`: numbers, sizes, dates and Markdown-safe text.

use std::fs;
use std::path::{Path, PathBuf};

mod charts;
mod format;
mod input;
mod markdown;
mod plot;
#[cfg(test)]
mod tests;

const TITLE_DEFAULT: &str = "Load test report";

/// Writes `OUT.md` and the plots into the directory `OUT/` (created), where
/// `out` is like `reports/NAME` (a trailing `.md` is accepted and dropped).
/// Returns the files written: the Markdown first, then the SVGs.
///
/// Each input is a [`RunResult`](crate::result::RunResult) JSON file; a file
/// of another schema version is refused with an error that names it. A plot
/// that no input has data for is skipped, and the Markdown says so.
pub fn write_report(inputs: &[PathBuf], out: &Path, title: Option<&str>) -> Result<Vec<PathBuf>, String> {
    if inputs.is_empty() {
        return Err("no result files to report on".to_string());
    }
    let (md_path, dir, dir_name) = output_paths(out)?;
    let runs = input::load_all(inputs)?;
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let plots = charts::write_all(&runs, &dir)?;
    let md = markdown::render(title.unwrap_or(TITLE_DEFAULT), &runs, &dir_name, &plots);
    fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    let mut written = vec![md_path];
    written.extend(plots.into_iter().filter_map(|p| p.written));
    Ok(written)
}

/// `reports/NAME` -> (`reports/NAME.md`, `reports/NAME`, `NAME`).
fn output_paths(out: &Path) -> Result<(PathBuf, PathBuf, String), String> {
    let out = if out.extension().is_some_and(|e| e == "md") { out.with_extension("") } else { out.to_path_buf() };
    let name = match out.file_name() {
        Some(n) if n != "." && n != ".." => n.to_string_lossy().into_owned(),
        _ => return Err(format!("--out {}: give a path like reports/NAME", out.display())),
    };
    let md = out.with_file_name(format!("{name}.md"));
    Ok((md, out, name))
}
