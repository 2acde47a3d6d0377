//! The table of results, printed and written as JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::harness::Spread;

/// A figure with its unit, as shown in the table.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The number.
    pub value: f64,
    /// Its unit, e.g. `"GB/s"`, `"µs"`, `"B"`.
    pub unit: &'static str,
}

impl Figure {
    /// A figure.
    pub fn new(value: f64, unit: &'static str) -> Self {
        Self { value, unit }
    }

    fn text(&self) -> String {
        let digits = match self.value.abs() {
            v if v >= 100.0 => 0,
            v if v >= 10.0 => 1,
            v if v >= 1.0 => 2,
            _ => 3,
        };
        format!("{:.*} {}", digits, self.value, self.unit)
    }
}

/// One row: a measure, ours against its baseline, and whether the target is met.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub measure: String,
    /// Our figure (the median).
    pub ours: Figure,
    /// The baseline's figure (the median), if the measure has a baseline.
    pub baseline: Option<(String, Figure)>,
    /// The ratio the target is about, with its spread over the paired samples.
    pub ratio: Option<Spread>,
    /// The target, in words.
    pub target: String,
    /// Whether the target is met; `None` when the measure only reports.
    pub met: Option<bool>,
    /// What else a reader needs to know.
    pub note: String,
}

/// The machine the run was on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical cores.
    pub cores: usize,
    /// The 1-, 5- and 15-minute load averages when the run began, if the system tells them.
    pub load_before: Option<[f64; 3]>,
    /// The same when it ended.
    pub load_after: Option<[f64; 3]>,
    /// Whether this was a `--quick` smoke run (its numbers mean nothing).
    pub quick: bool,
}

impl Machine {
    /// The load averages now, from `/proc/loadavg` where there is one.
    pub fn load_now() -> Option<[f64; 3]> {
        let text = std::fs::read_to_string("/proc/loadavg").ok()?;
        let mut fields = text.split_whitespace().map(str::parse::<f64>);
        Some([
            fields.next()?.ok()?,
            fields.next()?.ok()?,
            fields.next()?.ok()?,
        ])
    }
}

fn load_text(load: Option<[f64; 3]>) -> String {
    load.map_or_else(
        || "unknown".into(),
        |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"),
    )
}

fn met_text(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT MET",
        None => "reported",
    }
}

fn ratio_text(ratio: Option<Spread>) -> String {
    ratio.map_or_else(
        || "–".into(),
        |r| format!("{:.2}× ({:.2}–{:.2})", r.median, r.low, r.high),
    )
}

/// The table as text for a terminal.
pub fn table(machine: &Machine, rows: &[Row]) -> String {
    let headers = [
        "measure",
        "ours",
        "baseline",
        "ratio (p10–p90)",
        "target",
        "met",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            [
                row.measure.clone(),
                row.ours.text(),
                row.baseline
                    .as_ref()
                    .map_or_else(|| "–".into(), |(name, f)| format!("{} ({name})", f.text())),
                ratio_text(row.ratio),
                row.target.clone(),
                met_text(row.met).into(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "| {} |", padded.join(" | "));
    };
    line(&mut out, &headers.map(String::from));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(&mut out, row);
    }
    let _ = writeln!(
        out,
        "\n{} cores; load average {} before, {} after{}",
        machine.cores,
        load_text(machine.load_before),
        load_text(machine.load_after),
        if machine.quick {
            " (quick run: the numbers mean nothing)"
        } else {
            ""
        }
    );
    for row in rows.iter().filter(|r| !r.note.is_empty()) {
        let _ = writeln!(out, "* {}: {}", row.measure, row.note);
    }
    out
}

/// The table as a JSON document.
pub fn json(machine: &Machine, rows: &[Row]) -> String {
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "measure": row.measure,
                "ours": {"value": row.ours.value, "unit": row.ours.unit},
                "baseline": row.baseline.as_ref().map(|(name, f)| {
                    json!({"name": name, "value": f.value, "unit": f.unit})
                }),
                "ratio": row.ratio.map(|r| json!({"median": r.median, "p10": r.low, "p90": r.high})),
                "target": row.target,
                "met": row.met,
                "note": row.note,
            })
        })
        .collect();
    let document = json!({
        "machine": {
            "cores": machine.cores,
            "load_before": machine.load_before,
            "load_after": machine.load_after,
            "quick": machine.quick,
        },
        "rows": rows,
    });
    // Numbers that are not finite (a ratio over nothing) are written as null.
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_every_field_escapes_text_and_writes_no_number_that_is_not_finite() {
        let machine = Machine {
            cores: 2,
            load_before: Some([0.5, 1.0, 1.5]),
            load_after: None,
            quick: true,
        };
        let rows = [
            Row {
                measure: "send \"1 GiB\"\n\u{1}".into(),
                ours: Figure::new(1.25, "GB/s"),
                baseline: Some(("nc".into(), Figure::new(f64::NAN, "GB/s"))),
                ratio: Some(Spread {
                    median: 1.5,
                    low: 1.25,
                    high: f64::INFINITY,
                }),
                target: "≤ 1.5×".into(),
                met: Some(true),
                note: "\\ back".into(),
            },
            Row {
                measure: "rss".into(),
                ours: Figure::new(64.0, "MiB"),
                baseline: None,
                ratio: None,
                target: String::new(),
                met: None,
                note: String::new(),
            },
        ];
        let text = json(&machine, &rows);
        let value: Value = serde_json::from_str(&text).expect("the document is JSON");
        assert_eq!(
            value["machine"],
            json!({"cores": 2, "load_before": [0.5, 1.0, 1.5], "load_after": null, "quick": true})
        );
        let first = &value["rows"][0];
        assert_eq!(first["measure"], "send \"1 GiB\"\n\u{1}");
        assert_eq!(first["ours"], json!({"value": 1.25, "unit": "GB/s"}));
        assert_eq!(
            first["baseline"],
            json!({"name": "nc", "value": null, "unit": "GB/s"})
        );
        assert_eq!(
            first["ratio"],
            json!({"median": 1.5, "p10": 1.25, "p90": null})
        );
        assert_eq!(
            (&first["target"], &first["met"], &first["note"]),
            (&json!("≤ 1.5×"), &json!(true), &json!("\\ back"))
        );
        let second = &value["rows"][1];
        assert_eq!(
            (&second["baseline"], &second["ratio"], &second["met"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
    }
}
