//! SVG charts of the benchmarks (plotters' SVG backend: text stays `<text>` for the viewer to
//! render, so no font files are needed here).

use std::path::Path;

use plotters::prelude::*;

use super::detection::{Role, Row};

const SIZE: (u32, u32) = (760, 460);
const OURS: RGBColor = RGBColor(214, 39, 40);
/// Fixed pollers, fastest first.
const FIXED: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];

/// This operator's budgets other than the default.
const BUDGET: RGBColor = RGBColor(255, 127, 14);

fn colour(rows: &[Row], i: usize) -> RGBColor {
    match rows[i].role {
        Role::Ours => OURS,
        Role::Budget => BUDGET,
        Role::Fixed => {
            let fixed_index = rows[..i].iter().filter(|r| r.role == Role::Fixed).count();
            FIXED[fixed_index % FIXED.len()]
        }
    }
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// The legend where it hides the least, then the file written.
fn finish<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    legend: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// One step curve per schedule: the fraction of invalidations detected within x seconds.
pub fn delay_cdf(path: &Path, title: &str, rows: &[Row]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = rows
        .iter()
        .flat_map(|r| r.delays.iter().copied())
        .fold(1.0_f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("detection delay (simulated s)")
        .y_desc("fraction detected")
        .draw()
        .map_err(err)?;
    for (i, row) in rows.iter().enumerate() {
        let mut sorted = row.delays.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len().max(1) as f64;
        let mut points = vec![(0.0, 0.0)];
        for (k, d) in sorted.iter().enumerate() {
            points.push((*d, k as f64 / n));
            points.push((*d, (k + 1) as f64 / n));
        }
        points.push((x_max, 1.0));
        let style = ShapeStyle::from(colour(rows, i)).stroke_width(if row.role == Role::Ours {
            3
        } else {
            2
        });
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(err)?
            .label(format!("{} (mean {:.2} s)", row.label, row.mean()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    finish(&mut chart, &root, SeriesLabelPosition::LowerRight)
}

/// Mean delay against calls per invalidation: the fixed pollers as a curve, this operator as a
/// point, and the physical limit delay = limit / calls.
pub fn delay_vs_calls(path: &Path, title: &str, rows: &[Row], limit: f64) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = rows.iter().map(Row::calls).fold(1.0_f64, f64::max) * 1.15;
    let y_max = rows.iter().map(Row::mean).fold(1.0_f64, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("polling calls per invalidation")
        .y_desc("mean detection delay (simulated s)")
        .draw()
        .map_err(err)?;
    let limit_curve: Vec<(f64, f64)> = (1..=400)
        .map(|i| x_max * i as f64 / 400.0)
        .map(|c| (c, limit / c))
        .filter(|(_, d)| *d <= y_max)
        .collect();
    let grey = ShapeStyle::from(BLACK.mix(0.5)).stroke_width(1);
    chart
        .draw_series(LineSeries::new(limit_curve, grey))
        .map_err(err)?
        .label(format!("physical limit: delay × calls = {limit:.1} s"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    let mut fixed: Vec<&Row> = rows.iter().filter(|r| r.role == Role::Fixed).collect();
    fixed.sort_by(|a, b| a.calls().total_cmp(&b.calls()));
    let blue = ShapeStyle::from(FIXED[0]).stroke_width(2);
    chart
        .draw_series(LineSeries::new(
            fixed.iter().map(|r| (r.calls(), r.mean())),
            blue,
        ))
        .map_err(err)?
        .label("fixed pollers")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
    chart
        .draw_series(fixed.iter().map(|r| {
            EmptyElement::at((r.calls(), r.mean()))
                + Circle::new((0, 0), 4, FIXED[0].filled())
                + Text::new(r.label.clone(), (6, -14), ("sans-serif", 13))
        }))
        .map_err(err)?;
    let mut budgets: Vec<&Row> = rows.iter().filter(|r| r.role == Role::Budget).collect();
    if !budgets.is_empty() {
        budgets.extend(rows.iter().filter(|r| r.role == Role::Ours));
        budgets.sort_by(|a, b| a.calls().total_cmp(&b.calls()));
        let orange = ShapeStyle::from(BUDGET).stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                budgets.iter().map(|r| (r.calls(), r.mean())),
                orange,
            ))
            .map_err(err)?
            .label("this operator at other --poll-expected-calls")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange));
        chart
            .draw_series(budgets.iter().filter(|r| r.role == Role::Budget).map(|r| {
                EmptyElement::at((r.calls(), r.mean()))
                    + Circle::new((0, 0), 4, BUDGET.filled())
                    + Text::new(r.label.clone(), (6, 4), ("sans-serif", 13))
            }))
            .map_err(err)?;
    }
    for r in rows.iter().filter(|r| r.role == Role::Ours) {
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((r.calls(), r.mean()))
                    + Circle::new((0, 0), 7, OURS.filled())
                    + Text::new(r.label.clone(), (9, -16), ("sans-serif", 14)),
            ))
            .map_err(err)?
            .label(format!(
                "{} (defaults): {:.2} s, {:.2} calls",
                r.label,
                r.mean(),
                r.calls()
            ))
            .legend(|(x, y)| Circle::new((x + 10, y), 5, OURS.filled()));
    }
    finish(&mut chart, &root, SeriesLabelPosition::UpperRight)
}

/// A quantity over time, with a horizontal line at `cap` (a quota).
pub fn over_time(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    cap: Option<(f64, &str)>,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0_f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .chain(cap.map(|(c, _)| c))
        .fold(1.0_f64, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since the objects were created (simulated s)")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    if let Some((c, label)) = cap {
        let red = ShapeStyle::from(OURS.mix(0.7)).stroke_width(1);
        chart
            .draw_series(LineSeries::new([(0.0, c), (x_max, c)], red))
            .map_err(err)?
            .label(label.to_owned())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
    }
    for (i, (label, points)) in series.iter().enumerate() {
        let style = ShapeStyle::from(FIXED[i % FIXED.len()]).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    finish(&mut chart, &root, SeriesLabelPosition::LowerRight)
}

/// Points joined by a line, with their values written beside them.
pub fn xy_points(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    points: &[(f64, f64)],
    goals: &[(f64, f64, &str)],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = points
        .iter()
        .map(|p| p.0)
        .chain(goals.iter().map(|g| g.0))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let y_max = points
        .iter()
        .map(|p| p.1)
        .chain(goals.iter().map(|g| g.1))
        .fold(1.0_f64, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    let style = ShapeStyle::from(FIXED[0]).stroke_width(2);
    chart
        .draw_series(LineSeries::new(points.iter().copied(), style))
        .map_err(err)?
        .label("measured")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    chart
        .draw_series(points.iter().map(|&(x, y)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 4, FIXED[0].filled())
                + Text::new(format!("{y:.1}"), (6, -16), ("sans-serif", 13))
        }))
        .map_err(err)?;
    for &(x, y, label) in goals {
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x, y))
                    + Cross::new((0, 0), 6, OURS.stroke_width(2))
                    + Text::new(label.to_owned(), (8, 4), ("sans-serif", 13)),
            ))
            .map_err(err)?;
    }
    finish(&mut chart, &root, SeriesLabelPosition::UpperLeft)
}

/// Add one footprint run (objects cached, RSS in MiB) to `out/footprint.tsv`, replacing an
/// earlier run with as many objects, and redraw `out/footprint-rss.svg` from every run there.
pub fn record_footprint(out: &Path, objects: usize, rss_mib: f64) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let table = out.join("footprint.tsv");
    let mut runs: Vec<(f64, f64)> = std::fs::read_to_string(&table)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (n, rss) = l.split_once('\t')?;
            Some((n.trim().parse().ok()?, rss.trim().parse().ok()?))
        })
        .filter(|(n, _)| *n != objects as f64)
        .collect();
    runs.push((objects as f64, rss_mib));
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let text: String = runs.iter().map(|(n, r)| format!("{n}\t{r:.1}\n")).collect();
    std::fs::write(&table, text)?;
    xy_points(
        &out.join("footprint-rss.svg"),
        "Operator RSS against finished objects in the cache",
        ("objects in the cache", "RSS after the idle window (MiB)"),
        &runs,
        &[
            (10_000.0, 36.0, "goal: 36 MiB at 10,000"),
            (100_000.0, 120.0, "goal: 120 MiB at 100,000"),
        ],
    )
}
