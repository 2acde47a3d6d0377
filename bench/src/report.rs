//! The table of results, printed and written as JSON.

use std::fmt::Write as _;

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
    let mut out = String::from("{\n");
    let load = |load: Option<[f64; 3]>| {
        load.map_or_else(
            || "null".into(),
            |[a, b, c]| format!("[{}, {}, {}]", number(a), number(b), number(c)),
        )
    };
    let _ = writeln!(
        out,
        "  \"machine\": {{\"cores\": {}, \"load_before\": {}, \"load_after\": {}, \"quick\": {}}},",
        machine.cores,
        load(machine.load_before),
        load(machine.load_after),
        machine.quick
    );
    out.push_str("  \"rows\": [\n");
    for (i, row) in rows.iter().enumerate() {
        let baseline = row.baseline.as_ref().map_or_else(
            || "null".into(),
            |(name, f)| {
                format!(
                    "{{\"name\": {}, \"value\": {}, \"unit\": {}}}",
                    string(name),
                    number(f.value),
                    string(f.unit)
                )
            },
        );
        let ratio = row.ratio.map_or_else(
            || "null".into(),
            |r| {
                format!(
                    "{{\"median\": {}, \"p10\": {}, \"p90\": {}}}",
                    number(r.median),
                    number(r.low),
                    number(r.high)
                )
            },
        );
        let met = row.met.map_or_else(|| "null".into(), |m| m.to_string());
        let _ = write!(
            out,
            "    {{\"measure\": {}, \"ours\": {{\"value\": {}, \"unit\": {}}}, \"baseline\": {}, \
             \"ratio\": {}, \"target\": {}, \"met\": {}, \"note\": {}}}",
            string(&row.measure),
            number(row.ours.value),
            string(row.ours.unit),
            baseline,
            ratio,
            string(&row.target),
            met,
            string(&row.note)
        );
        out.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]\n}\n");
    out
}

fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "null".into()
    }
}

fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
