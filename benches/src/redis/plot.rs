//! The latency distributions as an SVG: one panel per workload, one curve
//! per design, latency (log scale) against the percentile on a "nines"
//! axis (0, 90, 99, 99.9), so that medians and tails both show.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One panel: a title and, per design, its latencies in nanoseconds,
/// sorted.
#[derive(Debug)]
pub struct Panel<'a> {
    /// The workload.
    pub title: String,
    /// (design, sorted latencies).
    pub curves: Vec<(&'static str, &'a [u64])>,
}

/// The percentile axis runs to p99.9.
const MAX_NINES: f64 = 3.0;

/// The colours of the designs, by position in the report's list.
const COLOURS: [RGBColor; 6] = [
    RGBColor(90, 90, 90),
    RGBColor(230, 120, 20),
    RGBColor(110, 170, 230),
    RGBColor(20, 70, 200),
    RGBColor(120, 200, 120),
    RGBColor(20, 130, 40),
];

/// The colour of the design at `index` in the report's list.
pub fn colour(index: usize) -> RGBColor {
    COLOURS[index % COLOURS.len()]
}

/// Writes `panels` (at most 4, in a 2 × 2 grid) to `path`; `designs` gives
/// every design's colour by its position.
///
/// # Errors
///
/// If the file cannot be written, as text.
pub fn write(
    path: &Path,
    caption: &str,
    designs: &[&str],
    panels: &[Panel<'_>],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (1280, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, body) = root.split_vertically(64);
    top.draw(&Text::new(
        caption.to_owned(),
        (20, 8),
        ("sans-serif", 20).into_font(),
    ))
    .map_err(|e| err(&e))?;
    // One legend for every panel, in a row under the caption.
    let width = 1240 / designs.len().max(1) as i32;
    for (i, name) in designs.iter().enumerate() {
        let x = 20 + width * i as i32;
        top.draw(&PathElement::new(
            vec![(x, 46), (x + 26, 46)],
            colour(i).stroke_width(3),
        ))
        .map_err(|e| err(&e))?;
        top.draw(&Text::new(
            (*name).to_owned(),
            (x + 32, 39),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(|e| err(&e))?;
    }
    for (area, panel) in body.split_evenly((2, 2)).iter().zip(panels) {
        let (lo, hi) = panel.curves.iter().filter(|(_, l)| !l.is_empty()).fold(
            (f64::MAX, 0f64),
            |(lo, hi), (_, l)| {
                // From the fastest percent up: a storm's few late callers
                // that find the record at once would squash the rest.
                let fast = super::workload::quantile(l, 0.01);
                (lo.min(micros(fast)), hi.max(micros(point(l, MAX_NINES))))
            },
        );
        let (lo, hi) = if lo > hi {
            (1.0, 10.0)
        } else {
            (lo * 0.8, hi * 1.25)
        };
        // Storms in milliseconds, the rest in microseconds.
        let (unit, per_unit) = if hi > 20_000.0 {
            ("ms", 1e3)
        } else {
            ("µs", 1.0)
        };
        let (lo, hi) = (lo / per_unit, hi / per_unit);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(
                Ticked {
                    inner: RangedCoordf64::from(0f64..MAX_NINES),
                    ticks: vec![0.0, 1.0, 2.0, 3.0],
                },
                Ticked {
                    inner: LogCoord::from((lo..hi).log_scale()),
                    ticks: ticks(lo, hi),
                },
            )
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc(format!("latency per call ({unit}, log scale)"))
            .x_label_formatter(&|x| nines(*x))
            .y_label_formatter(&|y| thousands(*y))
            .draw()
            .map_err(|e| err(&e))?;
        for (name, latencies) in &panel.curves {
            if latencies.is_empty() {
                continue;
            }
            let index = designs.iter().position(|d| d == name).unwrap_or(0);
            let points = (0..=300).map(|i| {
                let x = MAX_NINES * f64::from(i) / 300.0;
                let y = micros(point(latencies, x)) / per_unit;
                (x, y.clamp(lo, hi))
            });
            chart
                .draw_series(LineSeries::new(points, colour(index).stroke_width(2)))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))
}

/// An axis with the ticks given, and no light mesh lines.
struct Ticked<R> {
    inner: R,
    ticks: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// Round values between `lo` and `hi`: 1-2-5 per decade, more on a
/// narrow axis.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let steps: &[f64] = if hi / lo < 20.0 {
        &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for &m in steps {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// `20000` as `20,000`; below 10 with two significant digits.
fn thousands(x: f64) -> String {
    if x < 10.0 {
        let decimals = (1.0 - x.log10().floor()).max(0.0) as usize;
        return format!("{x:.decimals$}");
    }
    let digits = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The latency at `x` nines (percentile `1 - 10^-x`) of `sorted`.
fn point(sorted: &[u64], x: f64) -> u64 {
    super::workload::quantile(sorted, 1.0 - 10f64.powf(-x))
}

fn micros(ns: u64) -> f64 {
    (ns as f64 / 1_000.0).max(0.1)
}

/// `0`, `90`, `99`, `99.9` for 0, 1, 2, 3 nines.
fn nines(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let digits = (x.round() as usize).saturating_sub(2);
    format!("p{p:.digits$}")
}
