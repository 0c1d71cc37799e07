//! The curve of a run over time: once a second the sampler records how many messages were
//! accepted, delivered and journaled so far and the appliance's memory; from that come the
//! steady-state figures (after a warm-up) and the CSV and SVG files in `target/bench/`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

/// A counter the sampler reads.
pub type Counter = Box<dyn Fn() -> u64 + Send + Sync>;

/// What the sampler reads each second.
pub struct Probes {
    pub accepted: Arc<AtomicU64>,
    pub delivered: Counter,
    /// `None` when the run does not journal.
    pub journaled: Option<Counter>,
    /// The appliance's process, for its resident memory.
    pub pid: Option<u32>,
    /// How often a wait for the counters looks at them (reading Postfix's sinks runs a script).
    pub poll: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    pub accepted: u64,
    pub delivered: u64,
    pub journaled: Option<u64>,
    pub rss_mb: Option<f64>,
}

/// Samples every second (and once at the end) until dropped or finished.
pub struct Sampler {
    start: Instant,
    probes: Arc<Probes>,
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(start: Instant, probes: Probes) -> Sampler {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let probes = Arc::new(probes);
        let mine = probes.clone();
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            // The first tick is at once; the first sample is taken below.
            tick.tick().await;
            loop {
                out.push(read(start, &probes));
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.notified() => break,
                }
            }
            out.push(read(start, &probes));
            out
        });
        Sampler {
            start,
            probes: mine,
            stop,
            task,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Waits until `done` holds for the counters read now, up to `limit`; whether it did.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&Sample) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done(&read(self.start, &self.probes)) {
                return true;
            }
            tokio::time::sleep(self.probes.poll).await;
        }
        false
    }

    pub async fn finish(self) -> Vec<Sample> {
        self.stop.notify_one();
        self.task.await.unwrap_or_default()
    }
}

fn read(start: Instant, p: &Probes) -> Sample {
    Sample {
        t: start.elapsed().as_secs_f64(),
        accepted: p.accepted.load(Ordering::Relaxed),
        delivered: (p.delivered)(),
        journaled: p.journaled.as_ref().map(|j| j()),
        rss_mb: p.pid.and_then(rss_now_mb),
    }
}

/// The current resident memory of a process (MB).
pub fn rss_now_mb(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

/// The samples at or after `from` seconds and at or before `to`: the rate of a counter between
/// the first and the last of them.
pub fn rate(samples: &[Sample], from: f64, to: f64, counter: impl Fn(&Sample) -> u64) -> f64 {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .collect();
    match (inside.first(), inside.last()) {
        (Some(a), Some(b)) if b.t > a.t => {
            (counter(b).saturating_sub(counter(a))) as f64 / (b.t - a.t)
        }
        _ => 0.0,
    }
}

/// The run's end-to-end counter: delivered, or the smaller of delivered and journaled.
pub fn e2e(s: &Sample) -> u64 {
    s.journaled.map_or(s.delivered, |j| j.min(s.delivered))
}

pub fn peak_rss(samples: &[Sample]) -> Option<f64> {
    samples
        .iter()
        .filter_map(|s| s.rss_mb)
        .fold(None, |m, r| Some(m.map_or(r, |m: f64| m.max(r))))
}

/// Writes `NAME.csv` (one row a second: totals and per-second rates) and `NAME.svg` (the rates
/// and memory as lines) into `dir`.
pub fn write(dir: &Path, name: &str, title: &str, samples: &[Sample]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut csv = String::from(
        "t_secs,accepted,delivered,journaled,accepted_per_sec,delivered_per_sec,journaled_per_sec,rss_mb\n",
    );
    let rates = per_second(samples);
    for (s, r) in samples.iter().zip(&rates) {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{:.0},{:.0},{},{}",
            s.t,
            s.accepted,
            s.delivered,
            s.journaled.map(|j| j.to_string()).unwrap_or_default(),
            r.0,
            r.1,
            r.2.map(|j| format!("{j:.0}")).unwrap_or_default(),
            s.rss_mb.map(|m| format!("{m:.1}")).unwrap_or_default(),
        );
    }
    std::fs::write(dir.join(format!("{name}.csv")), csv)?;
    std::fs::write(dir.join(format!("{name}.svg")), svg(title, samples, &rates))?;
    Ok(())
}

/// Per-second rates between consecutive samples: (accepted, delivered, journaled).
type Rates = (f64, f64, Option<f64>);

fn per_second(samples: &[Sample]) -> Vec<Rates> {
    let mut out = vec![(
        0.0,
        0.0,
        samples.first().and_then(|s| s.journaled.map(|_| 0.0)),
    )];
    for w in samples.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let dt = (b.t - a.t).max(1e-3);
        let d = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
        out.push((
            d(a.accepted, b.accepted),
            d(a.delivered, b.delivered),
            match (a.journaled, b.journaled) {
                (Some(x), Some(y)) => Some(d(x, y)),
                _ => None,
            },
        ));
    }
    out
}

/// A plain line chart: messages per second on the left axis, memory (MB) on the right.
fn svg(title: &str, samples: &[Sample], rates: &[Rates]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 360.0;
    const L: f64 = 70.0;
    const R: f64 = 70.0;
    const T: f64 = 40.0;
    const B: f64 = 50.0;
    let t_max = samples.last().map_or(1.0, |s| s.t.max(1.0));
    let y_max = nice(
        rates
            .iter()
            .map(|r| r.0.max(r.1).max(r.2.unwrap_or(0.0)))
            .fold(1.0, f64::max),
    );
    let m_max = nice(peak_rss(samples).unwrap_or(1.0).max(1.0));
    let x = |t: f64| L + (W - L - R) * t / t_max;
    let y = |v: f64, max: f64| H - B - (H - T - B) * v / max;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{L}\" y=\"22\" font-size=\"14\">{}</text>\n",
        escape(title)
    );
    // Axes and grid.
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let gy = y(y_max * f, y_max);
        let _ = writeln!(
            out,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>\
             <text x=\"{}\" y=\"{:.1}\" fill=\"#777\">{:.0} MB</text>",
            W - R,
            L - 6.0,
            gy + 4.0,
            y_max * f,
            W - R + 6.0,
            gy + 4.0,
            m_max * f
        );
        let gx = x(t_max * f);
        let _ = writeln!(
            out,
            "<text x=\"{gx:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0} s</text>",
            H - B + 18.0,
            t_max * f
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">messages per second</text>",
        H / 2.0,
        H / 2.0
    );
    let line = |points: Vec<(f64, f64)>, colour: &str, dash: &str| {
        let pts: Vec<String> = points
            .iter()
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" {dash} points=\"{}\"/>\n",
            pts.join(" ")
        )
    };
    let series = |f: &dyn Fn(&Rates) -> Option<f64>| -> Vec<(f64, f64)> {
        samples
            .iter()
            .zip(rates)
            .filter_map(|(s, r)| f(r).map(|v| (x(s.t), y(v, y_max))))
            .collect()
    };
    let mut legend = vec![("accepted/s", "#1f77b4", "")];
    out.push_str(&line(series(&|r| Some(r.0)), "#1f77b4", ""));
    out.push_str(&line(series(&|r| Some(r.1)), "#2ca02c", ""));
    legend.push(("delivered/s", "#2ca02c", ""));
    if rates.iter().any(|r| r.2.is_some()) {
        out.push_str(&line(series(&|r| r.2), "#ff7f0e", ""));
        legend.push(("journaled/s", "#ff7f0e", ""));
    }
    let mem: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.rss_mb.map(|m| (x(s.t), y(m, m_max))))
        .collect();
    if !mem.is_empty() {
        out.push_str(&line(mem, "#777", "stroke-dasharray=\"4 3\""));
        legend.push(("RSS (right axis)", "#777", "stroke-dasharray=\"4 3\""));
    }
    for (i, (name, colour, dash)) in legend.iter().enumerate() {
        let lx = L + 10.0 + 150.0 * i as f64;
        let ly = H - 12.0;
        let _ = writeln!(
            out,
            "<line x1=\"{lx}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\" {dash}/>\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            lx + 24.0,
            lx + 30.0,
            ly + 4.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A round number at or above `v` for an axis maximum.
fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
