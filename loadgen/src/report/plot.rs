//! One line chart as an SVG file: lines of (x, y) points, axes, and a legend
//! beside the plot so that it never hides a line.
//!
//! plotters is built without font features: the SVG backend writes `<text>`
//! elements that the viewer renders, and lays them out with a size estimate.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::format;

const WIDTH: u32 = 960;
const HEIGHT_MIN: u32 = 440;
const LEGEND_ROW_PX: u32 = 18;
const LEGEND_WIDTH_MIN: u32 = 140;
const LEGEND_WIDTH_MAX: u32 = 360;
/// Longer legend labels are cut to fit `LEGEND_WIDTH_MAX` (about 7 px a character).
const LEGEND_CHARS_MAX: usize = 44;
/// Tick marks on the seconds axis, at most.
const X_TICKS_MAX: usize = 12;

/// Tableau 10: distinct to most eyes, including the common colour blindnesses' worst pairs.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One legend entry. A gap in the data (a second without a value) splits it into segments.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    /// The input's index: each input keeps its colour across the plots.
    pub color: usize,
    pub dashed: bool,
    pub segments: Vec<Vec<(f64, f64)>>,
}

impl Line {
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.is_empty())
    }
}

#[derive(Debug, Clone, Copy)]
pub enum XAxis {
    /// Seconds since the run started.
    Seconds,
    /// Percentiles on a "nines" scale: x = -log10(1 - q), labelled 50%, 90%, 99%, ...
    Nines,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x: XAxis,
    pub y_desc: String,
    /// The right end of the x axis; the data's when smaller.
    pub x_max: f64,
    pub lines: Vec<Line>,
}

pub fn draw(chart: &Chart, path: &Path) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| format!("{}: {e}", path.display());
    let points = || chart.lines.iter().flat_map(|l| l.segments.iter().flatten());
    let x_max = points().map(|p| p.0).fold(chart.x_max, f64::max);
    let y_max = points().map(|p| p.1).fold(0.0, f64::max);
    let x_max = if x_max.is_finite() && x_max > 0.0 { x_max } else { 1.0 };
    let y_max = if y_max.is_finite() && y_max > 0.0 { y_max * 1.05 } else { 1.0 };
    let (x_keys, x_desc): (Vec<f64>, &str) = match chart.x {
        XAxis::Seconds => (nice_ticks(x_max, X_TICKS_MAX), "seconds since start"),
        XAxis::Nines => (nines_ticks(x_max), "percentile"),
    };
    let x_label = |x: &f64| match chart.x {
        XAxis::Seconds => format!("{x:.0}"),
        XAxis::Nines => format::nines(*x),
    };
    let y_label = |y: &f64| format::si(*y);

    let longest_label = chart.lines.iter().map(|l| l.label.chars().count()).max().unwrap_or(0) as u32;
    let legend_width = (48 + 7 * longest_label).clamp(LEGEND_WIDTH_MIN, LEGEND_WIDTH_MAX);
    let height = HEIGHT_MIN.max(80 + LEGEND_ROW_PX * chart.lines.len() as u32);

    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (plot_area, legend_area) = root.split_horizontally(WIDTH - legend_width);
    let mut plot = ChartBuilder::on(&plot_area)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(TickedAxis { range: 0.0..x_max, ticks: x_keys }, 0.0..y_max)
        .map_err(err)?;
    plot.configure_mesh()
        .x_desc(x_desc)
        .y_desc(chart.y_desc.as_str())
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    for line in &chart.lines {
        let style = ShapeStyle { color: PALETTE[line.color % PALETTE.len()].to_rgba(), filled: false, stroke_width: 2 };
        for segment in &line.segments {
            if let [only] = segment.as_slice() {
                // A value between two gaps: a dot, since a line needs two points.
                plot.draw_series([Circle::new(*only, 2, style.filled())]).map_err(err)?;
            } else if line.dashed {
                plot.draw_series(DashedLineSeries::new(segment.iter().copied(), 7, 4, style)).map_err(err)?;
            } else {
                plot.draw_series(LineSeries::new(segment.iter().copied(), style)).map_err(err)?;
            }
        }
    }

    // The legend, beside the plot.
    let text = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, line) in chart.lines.iter().enumerate() {
        let y = 48 + (LEGEND_ROW_PX * i as u32) as i32;
        let style = ShapeStyle { color: PALETTE[line.color % PALETTE.len()].to_rgba(), filled: false, stroke_width: 2 };
        if line.dashed {
            legend_area.draw(&DashedPathElement::new(vec![(4, y), (34, y)], 7, 4, style)).map_err(err)?;
        } else {
            legend_area.draw(&PathElement::new(vec![(4, y), (34, y)], style)).map_err(err)?;
        }
        let label = if line.label.chars().count() > LEGEND_CHARS_MAX {
            format!("{}…", line.label.chars().take(LEGEND_CHARS_MAX - 1).collect::<String>())
        } else {
            line.label.clone()
        };
        legend_area.draw(&Text::new(label, (40, y), text.clone())).map_err(err)?;
    }
    root.present().map_err(err)
}

/// An axis of f64 whose ticks (labels and grid lines) are exactly `ticks`.
///
/// plotters' `with_key_points` would do, but its f64 flavour cannot take a
/// label formatter in 0.3.
struct TickedAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let fraction = if span > 0.0 { (value - self.range.start) / span } else { 0.5 };
        // `as` saturates: a value far outside the range lands on the border, not in a panic.
        limit.0 + (f64::from(limit.1 - limit.0) * fraction).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // No light grid lines between the ticks.
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// 0, step, 2 step, ... up to `max`, with a step of 1, 2 or 5 times a power of ten.
fn nice_ticks(max: f64, count_max: usize) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) || count_max == 0 {
        return vec![0.0];
    }
    let raw = max / count_max as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|s| max / s <= count_max as f64);
    let step = step.unwrap_or(10.0 * magnitude);
    (0..=count_max).map(|i| i as f64 * step).take_while(|v| *v <= max * (1.0 + 1e-9)).collect()
}

/// 0%, 50%, then 90%, 99%, 99.9%, ... up to `max` nines.
fn nines_ticks(max: f64) -> Vec<f64> {
    let mut ticks = vec![0.0, 2f64.log10()];
    ticks.extend((1..=max.floor().max(0.0) as u32).map(f64::from));
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_round_numbers() {
        assert_eq!(nice_ticks(100.0, 12), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]);
        assert_eq!(nice_ticks(3_600.0, 12).get(1), Some(&500.0));
        assert_eq!(nice_ticks(7.0, 12), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(nice_ticks(0.0, 12), vec![0.0]);
        assert_eq!(nice_ticks(f64::NAN, 12), vec![0.0]);
        assert_eq!(nines_ticks(3.0).len(), 5);
    }
}
