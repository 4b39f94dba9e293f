//! The table printed at the end: figures, ratios against the bars, and every run.

use crate::{MB, MIB};

/// Which way a bar points.
#[derive(Clone, Copy)]
pub enum Bar {
    AtMost(f64),
    AtLeast(f64),
    /// Strictly more than.
    Above(f64),
}

impl Bar {
    fn passes(self, value: f64) -> bool {
        match self {
            Bar::AtMost(limit) => value <= limit,
            Bar::AtLeast(limit) => value >= limit,
            Bar::Above(limit) => value > limit,
        }
    }
}

/// Rows of figures under areas, printed as one table with a count of the bars met.
pub struct Table {
    area: &'static str,
    rows: Vec<[String; 6]>,
    misses: usize,
    bars: usize,
    area_width: usize,
    figure_width: usize,
    rate: fn(u64, f64) -> String,
}

impl Table {
    /// A table whose first two columns are this wide and whose times show `rate(bytes, secs)`
    /// beside them.
    pub fn new(area_width: usize, figure_width: usize, rate: fn(u64, f64) -> String) -> Self {
        Table {
            area: "",
            rows: Vec::new(),
            misses: 0,
            bars: 0,
            area_width,
            figure_width,
            rate,
        }
    }

    /// Rows pushed from now on belong to `area`.
    pub fn area(&mut self, area: &'static str) {
        self.area = area;
    }

    fn push(&mut self, figure: &str, value: String, target: &str, result: &str) {
        let row = [
            self.area.into(),
            figure.into(),
            value,
            target.into(),
            result.into(),
            String::new(),
        ];
        self.rows.push(row);
    }

    fn runs(&mut self, runs: impl Iterator<Item = String>) {
        if let Some(row) = self.rows.last_mut() {
            row[5] = runs.collect::<Vec<_>>().join(" ");
        }
    }

    /// Median seconds and rate of `runs`; an empty `runs` prints `why` instead.
    pub fn time(&mut self, figure: &str, bytes: u64, runs: &[f64], why: &str) {
        if runs.is_empty() {
            self.push(figure, format!("{why:>8}"), "", "");
            return;
        }
        let m = median(runs);
        let value = format!("{m:8.3} s {:>12}", (self.rate)(bytes, m));
        self.push(figure, value, "", "");
        self.runs(runs.iter().map(|r| format!("{r:.3}")));
    }

    /// A time ratio held against `bar`; `None` (an anchor missing) prints n/a.
    pub fn ratio(&mut self, figure: &str, ratio: Option<f64>, bar: Bar) {
        let target = match bar {
            Bar::AtMost(x) => format!("≤ {x}x"),
            Bar::AtLeast(x) => format!("≥ {x}x"),
            Bar::Above(x) => format!("> {x}x"),
        };
        let Some(ratio) = ratio.filter(|r| r.is_finite()) else {
            self.push(figure, "     n/a".into(), &target, "");
            return;
        };
        let pass = bar.passes(ratio);
        self.verdict(pass);
        self.push(figure, format!("{ratio:8.2}x"), &target, pass_miss(pass));
    }

    /// A fraction held against `bar`, printed as a percentage.
    pub fn percent(&mut self, figure: &str, fraction: Option<f64>, bar: Bar) {
        let target = match bar {
            Bar::AtMost(x) => format!("< {}%", x * 100.0),
            Bar::AtLeast(x) => format!("≥ {}%", x * 100.0),
            Bar::Above(x) => format!("> {}%", x * 100.0),
        };
        let Some(fraction) = fraction.filter(|f| f.is_finite()) else {
            self.push(figure, "     n/a".into(), &target, "");
            return;
        };
        let pass = bar.passes(fraction);
        self.verdict(pass);
        let value = format!("{:7.2} %", fraction * 100.0);
        self.push(figure, value, &target, pass_miss(pass));
    }

    /// The median of `runs` (milliseconds) held against `limit_ms`, with its 90th percentile.
    pub fn millis_bar(&mut self, figure: &str, runs: &[f64], limit_ms: f64) {
        let target = format!("< {limit_ms} ms");
        if runs.is_empty() {
            self.push(figure, "     n/a".into(), &target, "");
            return;
        }
        let m = median(runs);
        let mut sorted = runs.to_vec();
        sorted.sort_by(f64::total_cmp);
        let p90 = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
        let pass = m < limit_ms;
        self.verdict(pass);
        let value = format!(
            "{m:7.2} ms (p90 {p90:.2}, max {:.2})",
            sorted[sorted.len() - 1]
        );
        self.push(figure, value, &target, pass_miss(pass));
    }

    /// Informative: no bar.
    pub fn info(&mut self, figure: &str, value: String) {
        self.push(figure, format!("{value:>8}"), "", "");
    }

    /// The highest peak RSS of `runs` (KiB), informative.
    pub fn rss(&mut self, figure: &str, runs: &[u64]) {
        match runs.iter().copied().max() {
            Some(kib) => {
                self.push(figure, fmt_kib(kib), "", "");
                self.runs(runs.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)));
            }
            None => self.push(figure, "     n/a".into(), "", ""),
        }
    }

    /// The highest peak RSS of `runs` (KiB), held against `limit_mib`.
    pub fn rss_bar(&mut self, figure: &str, runs: &[u64], limit_mib: u64) {
        let target = format!("≤ {limit_mib} MiB");
        match runs.iter().copied().max() {
            Some(kib) => {
                let pass = kib <= limit_mib * 1024;
                self.verdict(pass);
                self.push(figure, fmt_kib(kib), &target, pass_miss(pass));
                self.runs(runs.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)));
            }
            None => self.push(figure, "     n/a".into(), &target, ""),
        }
    }

    fn verdict(&mut self, pass: bool) {
        self.bars += 1;
        if !pass {
            self.misses += 1;
        }
    }

    pub fn print(&self) {
        let head = [
            "area",
            "figure",
            "median / value",
            "target",
            "result",
            "each run",
        ];
        let (aw, fw) = (self.area_width, self.figure_width);
        let [a, f, v, t, r, runs] = head;
        println!("{a:<aw$} {f:<fw$} {v:<23} {t:<9} {r:<6} {runs}");
        for [a, f, v, t, r, runs] in &self.rows {
            let line = format!("{a:<aw$} {f:<fw$} {v:<23} {t:<9} {r:<6} {runs}");
            println!("{}", line.trim_end());
        }
        let met = self.bars - self.misses;
        let note = if self.misses == 0 { "" } else { " (see MISS)" };
        println!("\n{met} of {} bars met{note}", self.bars);
    }
}

fn pass_miss(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// Decimal megabytes per second, as issue #3 states its bars.
pub fn fmt_rate_mb(bytes: u64, secs: f64) -> String {
    format!("{:.0} MB/s", bytes as f64 / MB as f64 / secs.max(1e-9))
}

/// MiB per second, or GiB per second from 10 GiB/s up.
pub fn fmt_rate_mib(bytes: u64, secs: f64) -> String {
    let mib_s = bytes as f64 / MIB as f64 / secs.max(1e-9);
    if mib_s >= 10_240.0 {
        format!("{:.1} GiB/s", mib_s / 1024.0)
    } else {
        format!("{mib_s:.0} MiB/s")
    }
}

pub fn fmt_kib(kib: u64) -> String {
    format!("{:6.1} MiB", kib as f64 / 1024.0)
}

pub fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// median(new) / median(base): how much slower (> 1) or faster the new binary is; `None`
/// if either has no runs.
pub fn ratio_of_medians(new: &[f64], base: &[f64]) -> Option<f64> {
    if new.is_empty() || base.is_empty() {
        return None;
    }
    Some(median(new) / median(base)).filter(|r| r.is_finite())
}

pub fn median(runs: &[f64]) -> f64 {
    let mut v = runs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// GiB per second (binary), as "BLAKE3 at ~3 GB/s" is compared against.
pub fn fmt_rate_gib(bytes: u64, secs: f64) -> String {
    format!(
        "{:.2} GiB/s",
        bytes as f64 / (1u64 << 30) as f64 / secs.max(1e-9)
    )
}
