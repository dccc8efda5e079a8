//! The per-server picture of the landing page: an inline SVG time axis, built
//! on the server (no JavaScript) from a [`ServerSummary`].
//!
//! Three rows over one time axis (UTC):
//! * **backups**: one mark per backup directory, its shape telling the status
//!   (DONE ●, FAILED ✕, STARTED △, UNREADABLE □ with `?`, any other ◇), with a
//!   line from `begin_time` to `end_time`;
//! * **recovery window**: a hatched bar from the first recoverability point to
//!   the end of the unbroken WAL chain ([`crate::catalog::continuity`]);
//! * **WAL**: the archive on each timeline up to the newest segment (■), WAL
//!   gaps (a zigzag break with the number of missing segments) and timeline
//!   switches (a dashed vertical line, `TL 2`).
//!
//! "now" is a solid vertical line. Nothing relies on colour alone: every mark
//! has its own shape or pattern, a text label where there is room, and a
//! `<title>` tooltip with the exact figures. Pure: the time `now` is passed in,
//! text is escaped by the template engine (askama's HTML/XML escaper).

use askama::Template;
use chrono::DateTime;

use crate::catalog::analysis::{ServerSummary, id_time};

/// Width of the picture, pixels.
pub const WIDTH: f64 = 960.0;
/// Height of the picture, pixels.
pub const HEIGHT: f64 = 152.0;
/// Left edge of the plot (the row labels are left of it), pixels.
const PLOT_LEFT: f64 = 128.0;
/// Right edge of the plot, pixels.
const PLOT_RIGHT: f64 = WIDTH - 28.0;
/// Vertical centre of the backups row, pixels.
const ROW_BACKUPS: f64 = 40.0;
/// Vertical centre of the recovery window row, pixels.
const ROW_WINDOW: f64 = 70.0;
/// Vertical centre of the WAL row, pixels.
const ROW_WAL: f64 = 100.0;
/// The time axis, pixels.
const AXIS: f64 = 128.0;
/// Marks closer than this are staggered vertically, pixels.
const MIN_MARK_GAP: f64 = 10.0;

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`, or `–` when unknown.
pub fn utc(t: Option<f64>) -> String {
    t.and_then(|t| DateTime::from_timestamp(t.floor() as i64, 0))
        .map_or_else(|| "–".into(), |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// The shape a backup is drawn with, one per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `DONE`: a filled circle.
    Done,
    /// `FAILED`: a cross.
    Failed,
    /// `STARTED` (running or crashed): an open triangle.
    Started,
    /// No readable `backup.info`: an open square with `?`.
    Unreadable,
    /// Any other barman status: an open diamond.
    Other,
}

impl Shape {
    /// The shape of a backup status as [`crate::catalog::analysis::BackupDetail::status`] spells it.
    pub fn of(status: &str) -> Self {
        match status {
            "DONE" => Self::Done,
            "FAILED" => Self::Failed,
            "STARTED" => Self::Started,
            "UNREADABLE" => Self::Unreadable,
            _ => Self::Other,
        }
    }
}

/// One backup on the backups row.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupMark {
    /// Backup id.
    pub id: String,
    /// Status as barman writes it (`DONE`, `FAILED`, ...) or `UNREADABLE`.
    pub status: String,
    /// How it is drawn.
    pub shape: Shape,
    /// Centre, pixels.
    pub x: f64,
    /// Centre, pixels (staggered when marks crowd).
    pub y: f64,
    /// End of the begin → end line, pixels (`None` without both times).
    pub end_x: Option<f64>,
    /// Tooltip text.
    pub title: String,
}

/// A labelled point or stretch on the axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Start, pixels.
    pub x0: f64,
    /// End, pixels (equal to `x0` for a point).
    pub x1: f64,
    /// Visible text.
    pub label: String,
    /// Tooltip text.
    pub title: String,
}

impl Span {
    /// Width, pixels.
    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }

    /// Middle, pixels.
    pub fn mid(&self) -> f64 {
        (self.x0 + self.x1) / 2.0
    }
}

/// The picture of one server: computed geometry, rendered by `templates/timeline.svg`.
#[derive(Debug, Clone, PartialEq, Template)]
#[template(path = "timeline.svg", escape = "html")]
pub struct Timeline {
    /// Unique on the page (element ids of the hatch pattern), made of `[a-z0-9-]` only.
    pub id: String,
    /// serverName (escaped by the template).
    pub server: String,
    /// Tick marks of the time axis: position (pixels) and label.
    pub ticks: Vec<(f64, String)>,
    /// Every backup directory, oldest first.
    pub backups: Vec<BackupMark>,
    /// The recovery window bar, when there is one.
    pub window: Option<Span>,
    /// Why there is no recovery window, when there is none.
    pub no_window: Option<String>,
    /// The archive per timeline: from its start (or the first DONE backup) to its end.
    pub wal: Vec<Span>,
    /// WAL gaps at the time the chain broke.
    pub gaps: Vec<Span>,
    /// Timeline switches.
    pub switches: Vec<Span>,
    /// The newest WAL segment, at its `LastModified`.
    pub newest_wal: Option<Span>,
    /// "now", pixels.
    pub now_x: f64,
    /// One sentence describing the picture (SVG `<desc>`, for screen readers).
    pub description: String,
}

/// Askama: a rendered [`Timeline`] is markup and goes into the page unescaped.
impl askama::filters::HtmlSafe for Timeline {}

impl Timeline {
    /// Width of the SVG, pixels.
    pub fn width(&self) -> f64 {
        WIDTH
    }

    /// Height of the SVG, pixels.
    pub fn height(&self) -> f64 {
        HEIGHT
    }

    /// Left edge of the plot, pixels.
    pub fn plot_left(&self) -> f64 {
        PLOT_LEFT
    }

    /// Right edge of the plot, pixels.
    pub fn plot_right(&self) -> f64 {
        PLOT_RIGHT
    }

    /// Row centres (backups, window, WAL) and the axis, pixels.
    pub fn rows(&self) -> (f64, f64, f64, f64) {
        (ROW_BACKUPS, ROW_WINDOW, ROW_WAL, AXIS)
    }
}

/// Maps Unix seconds to pixels.
#[derive(Debug, Clone, Copy)]
struct Scale {
    t0: f64,
    t1: f64,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        let f = ((t - self.t0) / (self.t1 - self.t0)).clamp(0.0, 1.0);
        (PLOT_LEFT + f * (PLOT_RIGHT - PLOT_LEFT)).round()
    }
}

/// When a backup happened: `begin_time`, else `end_time`, else the id's time.
fn backup_time(b: &crate::catalog::analysis::BackupDetail) -> Option<f64> {
    b.begin_time.or(b.end_time).or_else(|| id_time(&b.id))
}

/// Builds the picture of `server` at `now` (Unix seconds); `id` must be
/// unique on the page and made of `[a-z0-9-]`.
pub fn build(id: &str, server: &ServerSummary, now: f64) -> Timeline {
    let c = server.continuity.as_ref();
    let window_end = c.and_then(|c| c.recovery_window_end);
    let switch_times = c
        .into_iter()
        .flat_map(|c| &c.switches)
        .filter_map(|s| s.parent_last_archived);
    let gap_times = c.into_iter().flat_map(|c| &c.gaps).filter_map(|g| g.after_time);
    let times: Vec<f64> = server
        .backup_list
        .iter()
        .flat_map(|b| [backup_time(b), b.end_time])
        .flatten()
        .chain(server.first_recoverability_point)
        .chain(window_end)
        .chain(server.wal_last_archived_timestamp)
        .chain(switch_times)
        .chain(gap_times)
        .chain([now])
        .filter(|t| t.is_finite())
        .collect();
    let lo = times.iter().copied().fold(now, f64::min);
    let hi = times.iter().copied().fold(now, f64::max);
    // Without any event, show the last day; never less than a minute.
    let lo = if lo == hi { hi - 86_400.0 } else { lo };
    let span = (hi - lo).max(60.0);
    let scale = Scale {
        t0: lo - span * 0.03,
        t1: lo + span * 1.03,
    };

    let backups = backup_marks(server, scale);
    let first_done_x = server
        .backup_list
        .iter()
        .find(|b| b.status == "DONE")
        .and_then(backup_time)
        .map(|t| scale.x(t));

    let (window, no_window) = match (server.first_recoverability_point, window_end) {
        (Some(a), Some(b)) => (
            Some(Span {
                x0: scale.x(a),
                x1: scale.x(b.max(a)),
                label: "recovery window".into(),
                title: format!("recovery window: {} → {}", utc(Some(a)), utc(Some(b))),
            }),
            None,
        ),
        (None, _) => (None, Some("no recovery window: no DONE backup".to_string())),
        (Some(_), None) => (
            None,
            Some(match c.and_then(|c| c.first_missing.as_deref()) {
                Some(m) => format!("no recovery window: WAL {m} is missing"),
                None => "no recovery window: the oldest DONE backup's WAL is not in the archive".to_string(),
            }),
        ),
    };

    let mut switches = Vec::new();
    let mut wal = Vec::new();
    let newest_x = server.wal_last_archived_timestamp.map(|t| scale.x(t));
    if let (Some(c), Some(end)) = (c, newest_x) {
        let mut start = first_done_x.unwrap_or(PLOT_LEFT).min(end);
        for s in &c.switches {
            let Some(t) = s.parent_last_archived else { continue };
            let x = scale.x(t).clamp(start, end);
            wal.push(Span {
                x0: start,
                x1: x,
                label: format!("TL {}", s.parent),
                title: format!("WAL of timeline {} up to the switch to {}", s.parent, s.timeline),
            });
            switches.push(Span {
                x0: x,
                x1: x,
                label: format!("TL {}", s.timeline),
                title: format!(
                    "timeline {} → {} at LSN {:X}/{:X} (first segment {}); last WAL of timeline {} archived {}",
                    s.parent,
                    s.timeline,
                    s.switch_lsn >> 32,
                    s.switch_lsn & 0xFFFF_FFFF,
                    s.first_segment,
                    s.parent,
                    utc(Some(t)),
                ),
            });
            start = x;
        }
        wal.push(Span {
            x0: start,
            x1: end,
            label: format!("TL {}", c.timeline),
            title: format!("WAL of timeline {} up to {}", c.timeline, c.newest_segment),
        });
    }
    let gaps = c
        .into_iter()
        .flat_map(|c| &c.gaps)
        .map(|g| {
            let x = g.after_time.map(|t| scale.x(t)).or(first_done_x).unwrap_or(PLOT_LEFT);
            let range = if g.first == g.last {
                g.first.clone()
            } else {
                format!("{} … {}", g.first, g.last)
            };
            Span {
                x0: x,
                x1: x,
                label: format!("gap ×{}", g.segments),
                title: format!(
                    "WAL gap on timeline {}: {} missing ({} segment{}), after WAL archived {}",
                    g.timeline,
                    range,
                    g.segments,
                    if g.segments == 1 { "" } else { "s" },
                    utc(g.after_time),
                ),
            }
        })
        .collect::<Vec<_>>();

    let newest_wal = newest_x.map(|x| Span {
        x0: x,
        x1: x,
        label: "newest WAL".into(),
        title: format!(
            "newest WAL {} archived {}",
            server.wal_newest_segment.as_deref().unwrap_or("?"),
            utc(server.wal_last_archived_timestamp)
        ),
    });

    let description = describe(server, &backups, gaps.len(), switches.len());
    Timeline {
        id: id.to_string(),
        server: server.name.clone(),
        ticks: ticks(scale),
        backups,
        window,
        no_window,
        wal,
        gaps,
        switches,
        newest_wal,
        now_x: scale.x(now),
        description,
    }
}

fn backup_marks(server: &ServerSummary, scale: Scale) -> Vec<BackupMark> {
    let restorable = |id: &str| {
        server
            .continuity
            .as_ref()
            .is_some_and(|c| c.restorable.iter().any(|r| r == id))
    };
    let mut marks: Vec<BackupMark> = server
        .backup_list
        .iter()
        .map(|b| {
            let t = backup_time(b);
            let end_x = match (b.begin_time, b.end_time) {
                (Some(_), Some(e)) => Some(scale.x(e)),
                _ => None,
            };
            let mut title = format!(
                "backup {}: {}; begin {}, end {}",
                b.id,
                b.status,
                utc(b.begin_time),
                utc(b.end_time)
            );
            if b.status == "DONE" {
                title.push_str(if restorable(&b.id) {
                    "; restorable to the newest WAL"
                } else {
                    "; NOT restorable to the newest WAL"
                });
            }
            if t.is_none() {
                title.push_str("; time unknown");
            }
            if let Some(e) = &b.error {
                title.push_str("; ");
                title.push_str(e);
            }
            BackupMark {
                id: b.id.clone(),
                status: b.status.clone(),
                shape: Shape::of(&b.status),
                // A backup with no known time sits left of the axis.
                x: t.map_or(PLOT_LEFT - 12.0, |t| scale.x(t)),
                y: ROW_BACKUPS,
                end_x,
                title,
            }
        })
        .collect();
    // Stagger marks that would overlap: up, down, centre, ...
    let mut order: Vec<usize> = (0..marks.len()).collect();
    order.sort_by(|&a, &b| marks[a].x.total_cmp(&marks[b].x));
    let mut last: Option<f64> = None;
    let mut k = 0usize;
    for i in order {
        let x = marks[i].x;
        if last.is_some_and(|l| x - l < MIN_MARK_GAP) {
            k += 1;
            marks[i].y = ROW_BACKUPS + [0.0, -8.0, 8.0][k % 3];
        } else {
            k = 0;
            last = Some(x);
        }
    }
    marks
}

/// Tick marks at round times: about five over the axis.
fn ticks(scale: Scale) -> Vec<(f64, String)> {
    const STEPS: [f64; 19] = [
        1.0,
        2.0,
        5.0,
        10.0,
        15.0,
        30.0,
        60.0,
        120.0,
        300.0,
        600.0,
        900.0,
        1800.0,
        3600.0,
        7200.0,
        21_600.0,
        43_200.0,
        86_400.0,
        604_800.0,
        2_592_000.0,
    ];
    let span = scale.t1 - scale.t0;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 6.0)
        .unwrap_or_else(|| (span / 5.0 / 86_400.0).ceil() * 86_400.0);
    let format = if step < 60.0 {
        "%H:%M:%S"
    } else if step < 86_400.0 {
        "%m-%d %H:%M"
    } else {
        "%Y-%m-%d"
    };
    let mut out = Vec::new();
    let mut t = (scale.t0 / step).ceil() * step;
    while t <= scale.t1 {
        if let Some(d) = DateTime::from_timestamp(t as i64, 0) {
            out.push((scale.x(t), d.format(format).to_string()));
        }
        t += step;
    }
    out
}

fn describe(server: &ServerSummary, backups: &[BackupMark], gaps: usize, switches: usize) -> String {
    let count = |s: Shape| backups.iter().filter(|b| b.shape == s).count();
    format!(
        "{} backups ({} DONE, {} FAILED, {} STARTED, {} unreadable, {} other); {} WAL gap{}; {} timeline switch{}; newest WAL {}",
        backups.len(),
        count(Shape::Done),
        count(Shape::Failed),
        count(Shape::Started),
        count(Shape::Unreadable),
        count(Shape::Other),
        gaps,
        if gaps == 1 { "" } else { "s" },
        switches,
        if switches == 1 { "" } else { "es" },
        server.wal_newest_segment.as_deref().unwrap_or("none"),
    )
}

#[cfg(test)]
mod tests;
