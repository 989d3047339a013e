//! The JSON report of `verdict bench run`, and its rendering as a
//! Markdown table and an SVG chart (`verdict bench report`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::driver::Latency;

/// Checks at one concurrency, beside the ceiling measured just before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencyRun {
    /// Concurrent in-flight requests.
    pub concurrency: usize,
    /// The checks (in mixed mode: only the checks).
    pub checks: Latency,
    /// The cheapest RPC (grpc.health.v1 Check) from the same client.
    pub ceiling: Latency,
    /// `checks.per_s / ceiling.per_s`.
    pub fraction_of_ceiling: f64,
    /// Mixed mode: the writes interleaved with the checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<Latency>,
}

/// One `verdict bench run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The workload file's name.
    pub workload: String,
    /// Relationships in the workload.
    pub relationships: usize,
    /// Distinct checks in the workload.
    pub workload_checks: usize,
    /// `cold`, `warm` or `mixed`.
    pub mode: String,
    /// Mixed mode: `reads:writes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,
    /// The API the checks used when not `verdict.v1` (`authzed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Seconds per measured phase.
    pub duration_s: f64,
    /// Headline figures: those of the highest concurrency run.
    pub concurrency: usize,
    /// Checks per second (highest concurrency).
    pub checks_per_s: f64,
    /// Median check latency, µs (highest concurrency).
    pub p50_us: u64,
    /// 99th percentile, µs (highest concurrency).
    pub p99_us: u64,
    /// Health-check rate at that concurrency.
    pub ceiling_per_s: f64,
    /// `checks_per_s / ceiling_per_s`.
    pub fraction_of_ceiling: f64,
    /// Distinct checks whose answer differed from `--answers` (0 without).
    pub mismatches: u64,
    /// Check answers compared with `--answers`.
    pub answers_compared: u64,
    /// The first disagreements (`check: expected X, got Y`).
    pub mismatch_list: Vec<String>,
    /// Every concurrency, in the order run.
    pub runs: Vec<ConcurrencyRun>,
    /// Lookup-resources for sampled subjects (units = resources returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookups: Option<Latency>,
    /// Writes (TOUCH batches; units = tuples written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<Latency>,
    /// Write mode: writes per second at the highest concurrency (`p50_us`
    /// and `p99_us` are then the writes' latencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_per_s: Option<f64>,
}

impl RunReport {
    /// Fills the headline fields from the highest-concurrency run.
    pub fn set_headline(&mut self) {
        if let Some(top) = self.runs.iter().max_by_key(|r| r.concurrency) {
            self.concurrency = top.concurrency;
            self.checks_per_s = top.checks.per_s;
            self.p50_us = top.checks.p50_us;
            self.p99_us = top.checks.p99_us;
            self.ceiling_per_s = top.ceiling.per_s;
            self.fraction_of_ceiling = top.fraction_of_ceiling;
        }
        if self.mode == "write" {
            if let Some(w) = super::write_load::headline(&self.runs) {
                self.writes_per_s = Some(w.per_s);
                self.p50_us = w.p50_us;
                self.p99_us = w.p99_us;
            }
        }
    }

    fn label(&self) -> String {
        match &self.mix {
            Some(mix) => format!("{} {} {mix}", self.workload, self.mode),
            None => format!("{} {}", self.workload, self.mode),
        }
    }
}

/// A Markdown table: one row per (report, concurrency), then lookups and
/// writes.
pub fn markdown(reports: &[RunReport]) -> String {
    let mut out = String::new();
    out.push_str("| workload | mode | conc. | checks/s | p50 µs | p95 µs | p99 µs | p99.9 µs | max µs | ceiling/s | of ceiling | mismatches |\n");
    out.push_str(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in reports {
        let mut mode = match &r.mix {
            Some(mix) => format!("{} {mix}", r.mode),
            None => r.mode.clone(),
        };
        if let Some(api) = &r.api {
            let _ = write!(mode, " ({api})");
        }
        for run in &r.runs {
            let c = &run.checks;
            let _ = writeln!(
                out,
                "| {} | {mode} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0} | {:.1} % | {} |",
                r.workload,
                run.concurrency,
                c.per_s,
                c.p50_us,
                c.p95_us,
                c.p99_us,
                c.p999_us,
                c.max_us,
                run.ceiling.per_s,
                run.fraction_of_ceiling * 100.0,
                r.mismatches
            );
        }
    }
    let extras: Vec<_> = reports
        .iter()
        .flat_map(|r| {
            let per_run = r.runs.iter().filter_map(move |run| {
                (r.mode == "write")
                    .then_some(run.writes.as_ref())
                    .flatten()
                    .map(|l| (r, format!("writes c{}", run.concurrency), l, "tuples/s"))
            });
            [
                ("lookup-resources", &r.lookups, "results/s"),
                ("writes", &r.writes, "tuples/s"),
            ]
            .into_iter()
            .filter_map(move |(what, l, unit)| l.as_ref().map(|l| (r, what.to_string(), l, unit)))
            .chain(per_run)
        })
        .collect();
    if !extras.is_empty() {
        out.push_str("\n| workload | operation | calls/s | units/s | p50 µs | p99 µs | max µs |\n");
        out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
        for (r, what, l, unit) in extras {
            let _ = writeln!(
                out,
                "| {} | {what} | {:.0} | {:.0} {unit} | {} | {} | {} |",
                r.workload, l.per_s, l.units_per_s, l.p50_us, l.p99_us, l.max_us
            );
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG chart: p50 and p99 check latency (log scale) for every
/// (report, concurrency), and throughput as a fraction of the ceiling.
pub fn svg(reports: &[RunReport]) -> String {
    let bars: Vec<(String, &ConcurrencyRun)> = reports
        .iter()
        .flat_map(|r| {
            r.runs
                .iter()
                .map(move |run| (format!("{} c{}", r.label(), run.concurrency), run))
        })
        .collect();
    let group = 56.0;
    let (left, top, plot_h) = (70.0, 40.0, 220.0);
    let width = left + 20.0 + group * bars.len().max(1) as f64;
    let height = top + plot_h * 2.0 + 230.0;
    let max_us = bars
        .iter()
        .map(|(_, r)| r.checks.p99_us.max(1))
        .max()
        .unwrap_or(1) as f64;
    let decades = max_us.log10().ceil().max(1.0);
    let y_lat = |us: u64| top + plot_h - plot_h * ((us.max(1) as f64).log10() / decades);
    let top2 = top + plot_h + 60.0;
    let y_frac = |f: f64| top2 + plot_h - plot_h * f.clamp(0.0, 1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        s,
        r##"<text x="{left}" y="20" font-size="13">Check latency, µs (log scale): p50 <tspan fill="#3b7dd8">■</tspan> p99 <tspan fill="#d8613b">■</tspan></text>"##
    );
    for d in 0..=decades as u32 {
        let y = y_lat(10u64.pow(d));
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{width:.0}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 4.0,
            y + 4.0,
            10u64.pow(d)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{left}" y="{:.0}" font-size="13">Checks/s as a fraction of the ceiling (health check, same client)</text>"#,
        top2 - 20.0
    );
    for f in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = y_frac(f);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{width:.0}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.0}" y="{:.1}" text-anchor="end">{:.0}%</text>"##,
            left - 4.0,
            y + 4.0,
            f * 100.0
        );
    }
    for (i, (label, run)) in bars.iter().enumerate() {
        let x = left + 8.0 + group * i as f64;
        for (j, (us, color)) in [
            (run.checks.p50_us, "#3b7dd8"),
            (run.checks.p99_us, "#d8613b"),
        ]
        .into_iter()
        .enumerate()
        {
            let y = y_lat(us);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{y:.1}" width="18" height="{:.1}" fill="{color}"><title>{} {us} µs</title></rect>"#,
                x + 20.0 * j as f64,
                (top + plot_h - y).max(0.5),
                escape(label)
            );
        }
        let y = y_frac(run.fraction_of_ceiling);
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="{y:.1}" width="38" height="{:.1}" fill="#5a9e5a"><title>{} {:.0}/s of {:.0}/s</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0}/s</text>"##,
            (top2 + plot_h - y).max(0.5),
            escape(label),
            run.checks.per_s,
            run.ceiling.per_s,
            x + 19.0,
            y - 3.0,
            run.checks.per_s
        );
        let ly = top2 + plot_h + 12.0;
        let _ = write!(
            s,
            r#"<text transform="translate({:.1},{ly:.1}) rotate(60)">{}</text>"#,
            x + 10.0,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunReport {
        let mut r = RunReport {
            workload: "w.txt".into(),
            mode: "cold".into(),
            runs: vec![
                ConcurrencyRun {
                    concurrency: 1,
                    checks: Latency {
                        per_s: 100.0,
                        p50_us: 90,
                        p99_us: 300,
                        ..Latency::default()
                    },
                    ceiling: Latency {
                        per_s: 400.0,
                        ..Latency::default()
                    },
                    fraction_of_ceiling: 0.25,
                    writes: None,
                },
                ConcurrencyRun {
                    concurrency: 8,
                    checks: Latency {
                        per_s: 800.0,
                        p50_us: 200,
                        p99_us: 900,
                        ..Latency::default()
                    },
                    ceiling: Latency {
                        per_s: 1600.0,
                        ..Latency::default()
                    },
                    fraction_of_ceiling: 0.5,
                    writes: None,
                },
            ],
            ..RunReport::default()
        };
        r.set_headline();
        r
    }

    #[test]
    fn headline_is_the_highest_concurrency() {
        let r = sample();
        assert_eq!((r.concurrency, r.p50_us, r.p99_us), (8, 200, 900));
        assert_eq!((r.checks_per_s, r.ceiling_per_s), (800.0, 1600.0));
    }

    #[test]
    fn markdown_has_a_row_per_concurrency() {
        let md = markdown(&[sample()]);
        assert!(md.contains("| w.txt | cold | 1 | 100 | 90 |"), "{md}");
        assert!(md.contains("| w.txt | cold | 8 | 800 | 200 |"), "{md}");
        assert!(md.contains("50.0 %"), "{md}");
    }

    #[test]
    fn svg_is_one_document_with_a_bar_per_percentile() {
        let svg = svg(&[sample()]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>w.txt cold c8").count(), 3, "{svg}");
    }
}
