//! `govit report portfolio --format html`: one self-contained page for the supervising bureaus,
//! who would rather look than read — the figures of the CSV drawn as charts (plotters, SVG
//! inlined, no script, no fetch), then the tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;

use super::Row;

/// What the page shows besides the project rows.
pub struct Page<'a> {
    pub year: i32,
    pub generated: String,
    pub project_count: i32,
    pub totals_fen: [i64; 3],
    pub rows: &'a [Row],
    /// (project code, month YYYY-MM, risk colour) of every monthly snapshot.
    pub snapshots: &'a [(String, String, String)],
    /// (finding name, project code, description, severity, due date).
    pub overdue: &'a [(String, String, String, String, String)],
}

/// At most this many projects are drawn in a chart; all are in the tables.
const CHARTED: usize = 30;

const APPROVED: RGBColor = RGBColor(144, 202, 249);
const DISBURSED: RGBColor = RGBColor(21, 101, 192);
const NO_DATA: RGBColor = RGBColor(224, 224, 224);

fn risk_colour(name: &str) -> RGBColor {
    match name {
        "GREEN" => RGBColor(46, 125, 50),
        "YELLOW" => RGBColor(249, 168, 37),
        "RED" => RGBColor(198, 40, 40),
        _ => NO_DATA,
    }
}

/// Text as HTML, safe in element content and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn yuan(fen: i64) -> String {
    let yuan = fen / 100;
    let digits = yuan.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(d);
    }
    format!("{}{grouped}", if yuan < 0 { "-" } else { "" })
}

type Drawn = Result<String, Box<dyn std::error::Error>>;

/// One segment per item: a segmented range of `0..=last` has as many as it has values.
fn segments(
    items: usize,
) -> plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordi32> {
    (0..items.max(1) as i32 - 1).into_segmented()
}

/// The label of a segment's centre; nothing at its edges.
fn centre_label(labels: &[String], value: &SegmentValue<i32>) -> String {
    match value {
        SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Approved budget as a wide bar, disbursed as a narrow one inside it, one row per label, in
/// ten thousand yuan.
fn budget_bars(title: &str, bars: &[(String, i64, i64)]) -> Drawn {
    let height = 120 + 34 * bars.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let max = bars
            .iter()
            .map(|(_, a, d)| (*a).max(*d))
            .max()
            .unwrap_or(0)
            // At least 10,000 yuan, so that a portfolio of drafts still has a readable scale.
            .max(1_000_000) as f64
            / 1_000_000.0;
        let labels: Vec<String> = bars.iter().map(|(l, _, _)| l.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(150)
            .build_cartesian_2d(
                0.0..max * 1.05,
                (0..bars.len().max(1) as i32).into_segmented(),
            )?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(bars.len().max(1))
            .y_label_formatter(&|y| centre_label(&labels, y))
            .x_desc("10,000 yuan")
            .draw()?;
        let at = |i: usize| SegmentValue::CenterOf(i as i32);
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(APPROVED.filled())
                    .margin(4)
                    .data(
                        bars.iter()
                            .enumerate()
                            .map(|(i, (_, a, _))| (at(i), *a as f64 / 1_000_000.0)),
                    ),
            )?
            .label("approved budget")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], APPROVED.filled()));
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(DISBURSED.filled())
                    .margin(12)
                    .data(
                        bars.iter()
                            .enumerate()
                            .map(|(i, (_, _, d))| (at(i), *d as f64 / 1_000_000.0)),
                    ),
            )?
            .label("disbursed")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], DISBURSED.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// Cost against schedule variance, in percent, each project a point in its risk colour.
fn variance_scatter(rows: &[&Row]) -> Drawn {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let pct = |bp: i64| bp as f64 / 100.0;
        let span = rows
            .iter()
            .flat_map(|r| {
                [
                    pct(r.cost_variance_bp).abs(),
                    pct(r.schedule_variance_bp).abs(),
                ]
            })
            .fold(10.0_f64, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Cost and schedule variance (%, negative is over cost / behind schedule)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(-span..span, -span..span)?;
        chart
            .configure_mesh()
            .x_desc("schedule variance %")
            .y_desc("cost variance %")
            .draw()?;
        chart.draw_series(LineSeries::new([(-span, 0.0), (span, 0.0)], BLACK.mix(0.4)))?;
        chart.draw_series(LineSeries::new([(0.0, -span), (0.0, span)], BLACK.mix(0.4)))?;
        chart.draw_series(rows.iter().map(|r| {
            let at = (pct(r.schedule_variance_bp), pct(r.cost_variance_bp));
            EmptyElement::at(at)
                + Circle::new((0, 0), 6, risk_colour(&r.risk_color).filled())
                + Text::new(r.project.clone(), (8, -6), ("sans-serif", 12))
        }))?;
        root.present()?;
    }
    Ok(svg)
}

/// Each project's risk colour month by month, grey where it had no snapshot.
fn risk_history(
    projects: &[String],
    months: &[String],
    colour: &BTreeMap<(&str, &str), &str>,
) -> Drawn {
    let height = 120 + 30 * projects.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Risk colour by month (monthly snapshots)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(110)
            .build_cartesian_2d(segments(months.len()), segments(projects.len()))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(months.len().max(1))
            .y_labels(projects.len().max(1))
            .x_label_formatter(&|x| centre_label(months, x))
            .y_label_formatter(&|y| centre_label(projects, y))
            .draw()?;
        let cell = |x: usize, y: usize| {
            [
                (SegmentValue::Exact(x as i32), SegmentValue::Exact(y as i32)),
                (
                    SegmentValue::Exact(x as i32 + 1),
                    SegmentValue::Exact(y as i32 + 1),
                ),
            ]
        };
        chart.draw_series(projects.iter().enumerate().flat_map(|(y, project)| {
            months.iter().enumerate().map(move |(x, month)| {
                let c = colour
                    .get(&(project.as_str(), month.as_str()))
                    .map_or(NO_DATA, |c| risk_colour(c));
                Rectangle::new(cell(x, y), c.filled())
            })
        }))?;
        // White lines between the cells.
        chart.draw_series(projects.iter().enumerate().flat_map(|(y, _)| {
            months
                .iter()
                .enumerate()
                .map(move |(x, _)| Rectangle::new(cell(x, y), WHITE.stroke_width(3)))
        }))?;
        root.present()?;
    }
    Ok(svg)
}

/// Overdue findings per project.
fn overdue_bars(counts: &[(String, usize)]) -> Drawn {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        root.fill(&WHITE)?;
        let max = counts.iter().map(|(_, c)| *c).max().unwrap_or(1) as u32;
        let labels: Vec<String> = counts.iter().map(|(p, _)| p.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Open findings past their rectification deadline",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(40)
            .build_cartesian_2d(
                (0..counts.len().max(1) as i32).into_segmented(),
                0u32..max + 1,
            )?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(counts.len().max(1))
            .x_label_formatter(&|x| centre_label(&labels, x))
            .y_labels((max + 2) as usize)
            .y_desc("findings")
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(RGBColor(198, 40, 40).filled())
                .margin(20)
                .data(
                    counts
                        .iter()
                        .enumerate()
                        .map(|(i, (_, c))| (SegmentValue::CenterOf(i as i32), *c as u32)),
                ),
        )?;
        root.present()?;
    }
    Ok(svg)
}

/// The page, every chart drawn and every text escaped.
pub fn render(page: &Page) -> anyhow::Result<String> {
    let drawn = |what: &str, d: Drawn| d.map_err(|e| anyhow::anyhow!("drawing the {what}: {e}"));
    let mut charted: Vec<&Row> = page.rows.iter().collect();
    charted.sort_by(|a, b| {
        b.approved_budget_fen
            .cmp(&a.approved_budget_fen)
            .then(a.project.cmp(&b.project))
    });
    charted.truncate(CHARTED);
    let by_project: Vec<(String, i64, i64)> = charted
        .iter()
        .map(|r| (r.project.clone(), r.approved_budget_fen, r.disbursed_fen))
        .collect();
    let mut units: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in page.rows {
        let u = units.entry(r.applicant.as_str()).or_default();
        u.0 += r.approved_budget_fen;
        u.1 += r.disbursed_fen;
    }
    let mut by_unit: Vec<(String, i64, i64)> = units
        .into_iter()
        .map(|(u, (a, d))| (u.to_owned(), a, d))
        .collect();
    by_unit.sort_by_key(|u| std::cmp::Reverse(u.1));
    by_unit.truncate(CHARTED);

    let charted_codes: Vec<String> = charted.iter().map(|r| r.project.clone()).collect();
    let mut months: Vec<String> = page.snapshots.iter().map(|(_, m, _)| m.clone()).collect();
    months.sort();
    months.dedup();
    let colours: BTreeMap<(&str, &str), &str> = page
        .snapshots
        .iter()
        .map(|(p, m, c)| ((p.as_str(), m.as_str()), c.as_str()))
        .collect();
    let mut overdue_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, project, ..) in page.overdue {
        *overdue_counts.entry(project.as_str()).or_default() += 1;
    }
    let overdue_counts: Vec<(String, usize)> = overdue_counts
        .into_iter()
        .map(|(p, c)| (p.to_owned(), c))
        .collect();

    let mut html = String::new();
    let [approved, contracted, disbursed] = page.totals_fen;
    write!(
        html,
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <title>govit portfolio, {year_text}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em auto;max-width:960px;color:#222}}\
         h1{{font-size:1.6em}}h2{{font-size:1.2em;margin-top:2em}}\
         table{{border-collapse:collapse;width:100%;font-size:.85em}}\
         th,td{{border:1px solid #ccc;padding:3px 6px;text-align:left}}\
         td.n{{text-align:right}}.GREEN{{color:#2e7d32}}.YELLOW{{color:#b26a00}}.RED{{color:#c62828}}\
         svg{{max-width:100%;height:auto}}.totals span{{margin-right:2em}}\
         </style></head>\n<body>\n<h1>Portfolio of government-funded IT projects, {year_text}</h1>\n\
         <p class=\"totals\"><span>{count} projects</span><span>approved {approved} yuan</span>\
         <span>contracted {contracted} yuan</span><span>disbursed {disbursed} yuan</span></p>\n\
         <p>Generated {generated} from the projects service.</p>\n",
        year_text = if page.year == 0 {
            "all years".to_owned()
        } else {
            page.year.to_string()
        },
        count = page.project_count,
        approved = yuan(approved),
        contracted = yuan(contracted),
        disbursed = yuan(disbursed),
        generated = escape(&page.generated),
    )?;
    let more = |shown: usize, all: usize| {
        if all > shown {
            format!("<p>The {shown} largest of {all} are drawn; all are in the table below.</p>\n")
        } else {
            String::new()
        }
    };
    write!(
        html,
        "<section id=\"budget-by-project\"><h2>Approved budget and disbursed, by project</h2>\n{}{}</section>\n",
        drawn(
            "budget by project",
            budget_bars("Approved budget and disbursed, by project", &by_project)
        )?,
        more(by_project.len(), page.rows.len())
    )?;
    write!(
        html,
        "<section id=\"budget-by-unit\"><h2>Approved budget and disbursed, by unit</h2>\n{}</section>\n",
        drawn(
            "budget by unit",
            budget_bars("Approved budget and disbursed, by applying unit", &by_unit)
        )?
    )?;
    write!(
        html,
        "<section id=\"variance\"><h2>Cost and schedule variance</h2>\n{}</section>\n",
        drawn("variance", variance_scatter(&charted))?
    )?;
    write!(
        html,
        "<section id=\"risk-history\"><h2>Risk colour over the monthly snapshots</h2>\n{}</section>\n",
        if months.is_empty() {
            "<p>No monthly snapshot has been taken yet.</p>".to_owned()
        } else {
            drawn(
                "risk history",
                risk_history(&charted_codes, &months, &colours),
            )?
        }
    )?;
    write!(
        html,
        "<section id=\"overdue-findings\"><h2>Overdue findings</h2>\n{}",
        if overdue_counts.is_empty() {
            "<p>No finding is past its deadline.</p>".to_owned()
        } else {
            drawn("overdue findings", overdue_bars(&overdue_counts))?
        }
    )?;
    if !page.overdue.is_empty() {
        html.push_str(
            "<table><tr><th>finding</th><th>description</th><th>severity</th><th>due</th></tr>\n",
        );
        for (name, _, description, severity, due) in page.overdue {
            writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(name),
                escape(description),
                escape(severity),
                escape(due)
            )?;
        }
        html.push_str("</table>\n");
    }
    html.push_str("</section>\n<section id=\"projects\"><h2>Projects</h2>\n<table><tr><th>project</th><th>name</th><th>unit</th><th>state</th>\
        <th>approved (yuan)</th><th>disbursed (yuan)</th><th>CV %</th><th>SV %</th><th>risk</th></tr>\n");
    for r in page.rows {
        writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"{}\">{}</td></tr>",
            escape(&r.project),
            escape(&r.name),
            escape(&r.applicant),
            escape(&r.state),
            yuan(r.approved_budget_fen),
            yuan(r.disbursed_fen),
            r.cost_variance_bp as f64 / 100.0,
            r.schedule_variance_bp as f64 / 100.0,
            escape(&r.risk_color),
            escape(&r.risk_color),
        )?;
    }
    html.push_str("</table></section>\n</body></html>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        code: &str,
        unit: &str,
        approved: i64,
        disbursed: i64,
        cv: i64,
        sv: i64,
        risk: &str,
    ) -> Row {
        Row {
            project: code.into(),
            name: format!("<b>{code}</b> & \"co\""),
            applicant: unit.into(),
            category: "software".into(),
            state: "UNDER_CONSTRUCTION".into(),
            approved_budget_fen: approved,
            original_approved_budget_fen: approved,
            contract_amount_fen: approved,
            disbursed_fen: disbursed,
            cost_variance_bp: cv,
            schedule_variance_bp: sv,
            risk_color: risk.into(),
        }
    }

    /// Every chart drawn, every name escaped. With GOVIT_REPORT_SAMPLE=path set, the page is
    /// written there to be looked at (docs/supervision.md).
    #[test]
    fn the_page_draws_five_charts_and_escapes_every_name() {
        let rows = vec![
            row(
                "2026-0001",
                "91650100MA77000019",
                250_000_000,
                120_000_000,
                250,
                -300,
                "GREEN",
            ),
            row(
                "2026-0002",
                "91650100MA77000027",
                180_000_000,
                150_000_000,
                -1_800,
                -2_500,
                "YELLOW",
            ),
            row(
                "2026-0003",
                "91650100MA77000019",
                90_000_000,
                10_000_000,
                -4_000,
                500,
                "RED",
            ),
        ];
        let snapshots: Vec<(String, String, String)> = [
            ("2026-0001", "2026-09", "GREEN"),
            ("2026-0001", "2026-10", "GREEN"),
            ("2026-0002", "2026-09", "GREEN"),
            ("2026-0002", "2026-10", "YELLOW"),
            ("2026-0003", "2026-10", "RED"),
        ]
        .iter()
        .map(|(p, m, c)| (p.to_string(), m.to_string(), c.to_string()))
        .collect();
        let overdue = vec![(
            "projects/2026-0003/inspections/i1/findings/1".to_owned(),
            "2026-0003".to_owned(),
            "invoice <missing>".to_owned(),
            "HIGH".to_owned(),
            "2026-11-02".to_owned(),
        )];
        let page = render(&Page {
            year: 2026,
            generated: "2026-11-30 09:00 (Beijing)".into(),
            project_count: 3,
            totals_fen: [520_000_000, 520_000_000, 280_000_000],
            rows: &rows,
            snapshots: &snapshots,
            overdue: &overdue,
        })
        .unwrap();
        if let Ok(path) = std::env::var("GOVIT_REPORT_SAMPLE") {
            std::fs::write(path, &page).unwrap();
        }
        assert_eq!(page.matches("<svg").count(), 5);
        for id in [
            "budget-by-project",
            "budget-by-unit",
            "variance",
            "risk-history",
            "overdue-findings",
            "projects",
        ] {
            assert!(page.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(!page.contains("<b>2026"), "a name is text, not markup");
        assert!(page.contains("&lt;b&gt;2026-0001&lt;/b&gt; &amp; &quot;co&quot;"));
        assert!(page.contains("invoice &lt;missing&gt;"));
        assert!(page.contains("approved 5,200,000 yuan"));
        assert!(!page.contains("<script"), "self-contained and inert");
    }

    #[test]
    fn an_empty_portfolio_says_so_instead_of_drawing_nothing() {
        let page = render(&Page {
            year: 0,
            generated: String::new(),
            project_count: 0,
            totals_fen: [0, 0, 0],
            rows: &[],
            snapshots: &[],
            overdue: &[],
        })
        .unwrap();
        assert!(page.contains("all years"));
        assert!(page.contains("No monthly snapshot has been taken yet."));
        assert!(page.contains("No finding is past its deadline."));
    }
}
