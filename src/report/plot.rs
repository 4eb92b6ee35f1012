//! Learning curves as SVG: training vs validation loss and accuracy by epoch.

use crate::report::history::EpochRecord;
use plotters::prelude::*;

use plotters::coord::types::RangedCoordf64;

type LinearChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws a line with a legend entry.
fn labelled_line(chart: &mut LinearChart, points: Vec<(f64, f64)>, color: RGBAColor, width: u32, label: String) {
    let _ = chart
        .draw_series(LineSeries::new(points, color.stroke_width(width)))
        .map(|s| {
            s.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color))
        });
}

/// The legend box every netc plot uses.
fn draw_legend<'a, CT: plotters::coord::CoordTranslate>(chart: &mut ChartContext<'a, SVGBackend<'a>, CT>) {
    let _ = chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw();
}

/// Two panels (loss, accuracy) with train and validation curves; the kept epoch is marked and,
/// when early stopping ended the run, so is the stopping epoch.
pub fn curves_svg(
    model: &str,
    history: &[EpochRecord],
    best_epoch: Option<usize>,
    stop_epoch: Option<usize>,
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 400)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let panels = root.split_evenly((1, 2));
        let epochs = history.len().max(1) as f64;
        let train_loss: Vec<(f64, f64)> = history.iter().map(|r| (r.epoch as f64, r.train_loss)).collect();
        let val_loss: Vec<(f64, f64)> = history
            .iter()
            .filter_map(|r| r.val_loss.map(|v| (r.epoch as f64, v)))
            .collect();
        let train_acc: Vec<(f64, f64)> = history
            .iter()
            .map(|r| (r.epoch as f64, r.train_accuracy * 100.0))
            .collect();
        let val_acc: Vec<(f64, f64)> = history
            .iter()
            .filter_map(|r| r.val_accuracy.map(|v| (r.epoch as f64, v * 100.0)))
            .collect();
        let finite_max = |series: &[&[(f64, f64)]]| {
            series
                .iter()
                .flat_map(|s| s.iter().map(|p| p.1))
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max)
        };
        let loss_max = finite_max(&[&train_loss, &val_loss]).max(1e-6) * 1.05;
        let specs = [
            (format!("{model}: loss"), train_loss, val_loss, 0.0, loss_max),
            (format!("{model}: accuracy (%)"), train_acc, val_acc, 0.0, 100.0),
        ];
        for (area, (title, train, val, lo, hi)) in panels.iter().zip(specs) {
            let Ok(mut chart) = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(1.0..epochs.max(2.0), lo..hi)
            else {
                continue;
            };
            let _ = chart.configure_mesh().x_desc("epoch").draw();
            labelled_line(&mut chart, train, BLUE.into(), 2, "train".to_string());
            if !val.is_empty() {
                labelled_line(&mut chart, val, RED.into(), 2, "validation".to_string());
            }
            if let Some(best) = best_epoch {
                let points = vec![(best as f64, lo), (best as f64, hi)];
                labelled_line(&mut chart, points, GREEN.into(), 1, format!("best epoch {best}"));
            }
            if let Some(stop) = stop_epoch {
                let points = vec![(stop as f64, lo), (stop as f64, hi)];
                labelled_line(&mut chart, points, BLACK.into(), 1, format!("early stop at {stop}"));
            }
            draw_legend(&mut chart);
        }
        let _ = root.present();
    }
    svg
}

/// Mean absolute weight gradient per layer by epoch, on a log scale: under sigmoid the layers
/// near the input get gradients orders of magnitude smaller than those near the output.
pub fn gradients_svg(model: &str, history: &[EpochRecord]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 420)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let layers = history.first().map_or(0, |r| r.grad_stats.len());
        let values = history
            .iter()
            .flat_map(|r| r.grad_stats.iter().map(|g| g.mean_abs_grad))
            .filter(|v| *v > 0.0 && v.is_finite());
        let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo.is_finite() {
            (lo / 2.0, hi * 2.0)
        } else {
            (1e-8, 1.0)
        };
        let epochs = history.len().max(2) as f64;
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(
                format!("{model}: mean |gradient| of each layer's weights"),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(1.0..epochs, (lo..hi).log_scale())
        {
            let _ = chart
                .configure_mesh()
                .x_desc("epoch")
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .draw();
            for l in 0..layers {
                let color = Palette99::pick(l).to_rgba();
                let points: Vec<(f64, f64)> = history
                    .iter()
                    .map(|r| (r.epoch as f64, r.grad_stats[l].mean_abs_grad.max(lo)))
                    .collect();
                let name = history[0].grad_stats[l].layer.clone();
                let _ = chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map(|s| {
                        s.label(name)
                            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color))
                    });
            }
            draw_legend(&mut chart);
        }
        let _ = root.present();
    }
    svg
}

/// Accuracy of every combination of a sweep: train, validation and test, by combination.
pub fn sweep_svg(title: &str, labels: &[String], series: &[(&str, Vec<Option<f64>>)]) -> String {
    let mut svg = String::new();
    {
        let width = (160 + 70 * labels.len()).clamp(640, 1600) as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 440)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let n = labels.len().max(1);
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..100.0)
        {
            let _ = chart
                .configure_mesh()
                .x_labels(n)
                .x_label_formatter(&|x| labels.get(x.round().max(0.0) as usize).cloned().unwrap_or_default())
                .y_desc("accuracy (%)")
                .draw();
            for (k, (name, values)) in series.iter().enumerate() {
                let color = [BLUE, RED, GREEN]
                    .get(k)
                    .copied()
                    .map_or(Palette99::pick(k).to_rgba(), |c| c.to_rgba());
                let points: Vec<(f64, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i as f64, v * 100.0)))
                    .collect();
                let _ = chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map(|s| {
                        s.label(*name)
                            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color))
                    });
                let _ = chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())));
            }
            draw_legend(&mut chart);
        }
        let _ = root.present();
    }
    svg
}
