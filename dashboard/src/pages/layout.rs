//! The frame every page shares — head, style, navigation, the small script that follows a
//! live session — the error page, and the formatting of numbers, times and states that all
//! pages use. Everything is bundled in the binary: nothing is fetched from elsewhere.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as reg;

const STYLE: &str = r#"
:root { --fg:#1d2330; --muted:#5d6b82; --line:#d9dee8; --bg:#f7f8fb; --ok:#1a7f37; --bad:#b42318; --warn:#9a6700; --accent:#2f5bd3; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header.top { background:#1d2330; color:#fff; padding:10px 24px; display:flex; gap:24px; align-items:baseline; }
header.top a { color:#fff; text-decoration:none; font-weight:600; }
header.top .live { margin-left:auto; font-size:12px; color:#b9c3d6; }
main { padding:16px 24px 48px; max-width:1280px; }
h1 { font-size:20px; margin:8px 0 4px; } h2 { font-size:16px; margin:28px 0 8px; border-bottom:1px solid var(--line); padding-bottom:4px; }
h3 { font-size:14px; margin:16px 0 6px; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#eef1f6; font-weight:600; white-space:nowrap; } td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.best td { background:#eefaf0; }
a { color:var(--accent); } code, pre { font:12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background:#fff; border:1px solid var(--line); padding:8px; overflow:auto; max-height:420px; white-space:pre-wrap; word-break:break-word; }
.muted { color:var(--muted); } .empty { color:var(--muted); font-style:italic; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; background:#e6e9f0; }
.status-SUCCEEDED, .decision-achieved, .state-succeeded { color:var(--ok); }
.status-FAILED, .status-CANCELLED, .decision-not-achieved, .state-failed { color:var(--bad); }
.status-RUNNING { color:var(--accent); } .status-COMPLETED { color:var(--ok); } .status-PAUSED, .status-EXHAUSTED, .decision-undecided, .state-pruned { color:var(--warn); }
.facts { display:grid; grid-template-columns:repeat(auto-fill, minmax(220px, 1fr)); gap:6px 16px; margin:8px 0; }
.facts div span { color:var(--muted); display:block; font-size:12px; }
.verdict { background:#fff; border:1px solid var(--line); border-left:4px solid var(--accent); padding:8px 12px; white-space:pre-wrap; }
form.filters { display:flex; gap:8px; flex-wrap:wrap; margin:8px 0 12px; align-items:center; }
input, select, button, textarea { font:inherit; padding:4px 8px; border:1px solid var(--line); border-radius:4px; background:#fff; }
button { background:var(--accent); color:#fff; border-color:var(--accent); cursor:pointer; }
details { margin:4px 0; } summary { cursor:pointer; }
svg.chart { width:100%; max-width:760px; background:#fff; border:1px solid var(--line); display:block; margin:8px 0; }
svg.chart text { font-size:11px; fill:var(--muted); } svg.chart text.label, svg.chart text.seed { fill:var(--fg); }
svg.chart line.grid { stroke:#eef0f4; } svg.chart line.target { stroke:var(--bad); stroke-dasharray:5 4; stroke-width:1.5; }
svg.chart line.ci { stroke-width:3; stroke:currentColor; } svg.chart circle.mean { fill:currentColor; }
svg.chart .achieved { color:var(--ok); } svg.chart .not-achieved { color:var(--bad); } svg.chart .undecided { color:var(--warn); }
svg.chart g.curve polyline { fill:none; stroke-width:1.8; stroke:currentColor; }
svg.chart g.curve circle { fill:currentColor; }
svg.chart g.state-succeeded { color:var(--accent); } svg.chart g.state-running { color:#7a8bb5; }
svg.chart g.state-pruned polyline { stroke-dasharray:4 3; } svg.chart g.state-failed polyline { stroke-dasharray:2 2; }
.candidate { background:#fff; border:1px solid var(--line); padding:4px 14px 12px; margin:14px 0; }
.actions { display:flex; gap:16px; flex-wrap:wrap; } .actions form { background:#fff; border:1px solid var(--line); padding:8px 12px; }
"#;

/// Follows the session's server-sent events and reloads the page's live part when records
/// land (at most every second); the connection state is shown in the header.
const LIVE_SCRIPT: &str = r#"
(function () {
  var main = document.querySelector('main[data-live]');
  if (!main || !window.EventSource) return;
  var state = document.getElementById('live-state');
  var since = main.getAttribute('data-position');
  var source = new EventSource(main.getAttribute('data-live') + '?after=' + since);
  var pending = null;
  function refresh() {
    pending = null;
    fetch(window.location.pathname + '?fragment=1', { headers: { 'accept': 'text/html' } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.querySelector('main');
        if (!fresh) return;
        var open = Array.prototype.map.call(main.querySelectorAll('details[open]'), function (d) { return d.id; });
        main.innerHTML = fresh.innerHTML;
        main.setAttribute('data-position', fresh.getAttribute('data-position'));
        open.forEach(function (id) { var d = id && document.getElementById(id); if (d) d.open = true; });
      });
  }
  source.addEventListener('record', function (e) {
    if (state) state.textContent = 'live · event ' + e.lastEventId;
    if (!pending) pending = setTimeout(refresh, 1000);
  });
  source.addEventListener('end', function () { if (state) state.textContent = 'session ended'; source.close(); refresh(); });
  source.onerror = function () { if (state) state.textContent = 'reconnecting…'; };
})();
"#;

/// A whole page: `title`, the navigation, and `body` inside `<main>` with its attributes.
pub fn page(title: &str, live: Option<(&str, u64)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Research Agent" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header.top {
                    a href="/" { "Research Agent" }
                    a href="/" { "Sessions" }
                    a href="/compare" { "Compare" }
                    @if live.is_some() { span.live #live-state { "live" } }
                }
                @match live {
                    Some((events, position)) => main data-live=(events) data-position=(position) { (body) },
                    None => main { (body) },
                }
                @if live.is_some() { script { (PreEscaped(LIVE_SCRIPT)) } }
            }
        }
    }
}

/// The page for an error: its code, a title and what to do.
pub fn error_page(code: u16, title: &str, message: &str) -> Markup {
    page(
        title,
        None,
        html! {
            h1 { (code) " · " (title) }
            p.verdict.error-message { (message) }
            p { a href="/" { "Back to the sessions" } }
        },
    )
}

/// The sign-in page of a dashboard that asks for a token (`server.auth.tokens_file`).
pub fn login_page(problem: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(problem) = problem { p.verdict.error-message { (problem) } }
            form #login method="post" action="/login" {
                label { "Token " input type="password" name="token" autocomplete="current-password" required; }
                " " button type="submit" { "Sign in" }
            }
            p.muted { "A token from the registry's tokens file; it is kept in a cookie for this site only." }
        },
    )
}

/// A number as the tables show it: 4 significant decimals, "–" when not finite.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-3..1e6).contains(&magnitude) {
        format!("{value:.3e}")
    } else {
        format!("{value:.4}")
    }
}

/// A p-value: "<0.0001" below the table's resolution.
pub fn p_value(value: f64) -> String {
    if value.is_finite() && value < 1e-4 {
        "<0.0001".into()
    } else {
        number(value)
    }
}

pub fn seconds(value: f64) -> String {
    if !value.is_finite() || value < 0.0 {
        return "–".into();
    }
    if value < 120.0 {
        format!("{value:.1} s")
    } else if value < 7200.0 {
        format!("{:.1} min", value / 60.0)
    } else {
        format!("{:.1} h", value / 3600.0)
    }
}

pub fn bytes(value: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if value == 0 {
        "–".into()
    } else if (value as f64) < MIB {
        format!("{:.1} KiB", value as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", value as f64 / MIB)
    }
}

/// A timestamp as UTC "YYYY-MM-DD HH:MM:SS".
pub fn time(timestamp: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = timestamp else {
        return "–".into();
    };
    let days = t.seconds.div_euclid(86_400);
    let rest = t.seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// "RUNNING", "SUCCEEDED", … (the proto name without its prefix).
pub fn status_name(status: reg::ExperimentStatus) -> &'static str {
    status
        .as_str_name()
        .trim_start_matches("EXPERIMENT_STATUS_")
}

pub fn status_badge(status: reg::ExperimentStatus) -> Markup {
    let name = status_name(status);
    html! { span class={"badge status status-" (name)} data-status=(name) { (name) } }
}

/// "succeeded", "pruned", … for CSS classes and labels.
pub fn trial_state(state: common::TrialState) -> &'static str {
    match state {
        common::TrialState::Unspecified => "unknown",
        common::TrialState::Pending => "pending",
        common::TrialState::Running => "running",
        common::TrialState::Succeeded => "succeeded",
        common::TrialState::Failed => "failed",
        common::TrialState::Pruned => "pruned",
        common::TrialState::Cancelled => "cancelled",
    }
}

pub fn exit_reason(reason: common::ExitReason) -> &'static str {
    match reason {
        common::ExitReason::Unspecified => "–",
        common::ExitReason::Completed => "completed",
        common::ExitReason::Failed => "failed",
        common::ExitReason::Timeout => "timeout",
        common::ExitReason::OutOfMemory => "out of memory",
        common::ExitReason::OutputLimit => "output limit",
        common::ExitReason::Killed => "killed",
        common::ExitReason::Cancelled => "cancelled",
        common::ExitReason::Rejected => "rejected",
    }
}

pub fn decision_name(decision: common::GoalDecision) -> &'static str {
    match decision {
        common::GoalDecision::Achieved => "achieved",
        common::GoalDecision::NotAchieved => "not achieved",
        common::GoalDecision::Undecided | common::GoalDecision::Unspecified => "undecided",
    }
}

/// "val_accuracy ≥ 0.9" for a target; "val_loss as low as possible" when open-ended.
pub fn target_text(target: &common::Target) -> String {
    if target.open_ended {
        let way = match target.direction() {
            common::Direction::Minimize => "low",
            common::Direction::Maximize | common::Direction::Unspecified => "high",
        };
        return format!("{} as {way} as possible (open-ended)", target.metric);
    }
    let sign = match target.direction() {
        common::Direction::Minimize => "≤",
        common::Direction::Maximize | common::Direction::Unspecified => "≥",
    };
    format!("{} {sign} {}", target.metric, number(target.threshold))
}

/// The first characters of an id after its prefix, for tables ("cand_0193a4b2…" → "0193a4b2").
pub fn short_id(id: &str) -> &str {
    let rest = id.split_once('_').map_or(id, |(_, rest)| rest);
    rest.get(..8).unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_well() {
        assert_eq!(number(0.91234), "0.9123");
        assert_eq!(number(f64::NAN), "–");
        assert_eq!(number(1.5e-6), "1.500e-6");
        assert_eq!(p_value(1e-9), "<0.0001");
        assert_eq!(seconds(75.0), "75.0 s");
        assert_eq!(seconds(600.0), "10.0 min");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(short_id("cand_0193a4b27c1d"), "0193a4b2");
        let t = prost_types::Timestamp {
            seconds: 1_796_644_800,
            nanos: 0,
        };
        assert_eq!(time(Some(&t)), "2026-12-07 12:00:00");
    }

    #[test]
    fn error_pages_escape_what_they_repeat() {
        let html =
            error_page(404, "Not found", "no session \"<script>alert(1)</script>\"").into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
