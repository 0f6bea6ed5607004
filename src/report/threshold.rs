//! `--threshold EXPR`: pass/fail rules on the final stats. (Interface
//! only; the grammar and evaluation are being written.)

use super::FinalReport;

/// One parsed `--threshold` expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub text: String,
}

/// Parse one expression (clap's value parser: the error is shown with the
/// flag, exit 2).
pub fn parse(text: &str) -> Result<Threshold, String> {
    Err(format!("'{text}': thresholds are not implemented yet"))
}

/// A threshold's outcome on the final stats.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub threshold: Threshold,
    pub passed: bool,
    /// The line printed for it: expression, measured value, PASS/FAIL.
    pub line: String,
}

/// Evaluate every threshold on the final report.
pub fn evaluate(thresholds: &[Threshold], _report: &FinalReport) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| Verdict {
            threshold: t.clone(),
            passed: false,
            line: format!("{}: not evaluated", t.text),
        })
        .collect()
}
