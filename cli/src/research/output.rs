//! What `research-agent` prints and answers: names of the contract's enums, the status as text
//! or JSON, the leaderboard table, and the exit code of a session's end.

use super::*;

/// 0: goal achieved, or an open-ended goal answered with the best found; 2: budget spent
/// without reaching the goal; 3: paused (resumable); 1: failed.
pub fn exit_code(state: pb::ResearchState) -> u8 {
    match state {
        pb::ResearchState::Succeeded | pb::ResearchState::Completed => 0,
        pb::ResearchState::Exhausted => 2,
        pb::ResearchState::Paused | pb::ResearchState::Stopping | pb::ResearchState::Running => 3,
        _ => 1,
    }
}

pub(super) fn short(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

pub(super) fn first_line(text: &str, limit: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > limit {
        format!("{}…", short(line, limit))
    } else {
        line.to_owned()
    }
}

pub fn strategy_name(strategy: i32) -> &'static str {
    ra_client::strategy::name(pb::Strategy::try_from(strategy).unwrap_or_default())
        .unwrap_or("default")
}

pub fn state_name(state: i32) -> &'static str {
    match pb::ResearchState::try_from(state).unwrap_or_default() {
        pb::ResearchState::Running => "RUNNING",
        pb::ResearchState::Stopping => "STOPPING",
        pb::ResearchState::Paused => "PAUSED",
        pb::ResearchState::Succeeded => "SUCCEEDED",
        pb::ResearchState::Exhausted => "EXHAUSTED",
        pb::ResearchState::Completed => "COMPLETED",
        pb::ResearchState::Failed => "FAILED",
        pb::ResearchState::Cancelled => "CANCELLED",
        pb::ResearchState::Unspecified => "UNKNOWN",
    }
}

pub(super) fn decision_name(decision: i32) -> &'static str {
    planner_svc::report::decision_name(decision)
}

pub(super) fn cell(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "–".into()
    }
}

pub(super) fn number(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// The status as JSON (NaN as null).
pub fn status_json(status: &pb::ResearchStatus) -> serde_json::Value {
    let goal = status.goal.clone().unwrap_or_default();
    let target = goal.target.clone().unwrap_or_default();
    serde_json::json!({
        "research_id": status.research_id,
        "state": state_name(status.state),
        "strategy": strategy_name(status.strategy),
        "dataset": goal.dataset,
        "metric": target.metric,
        "threshold": number(target.threshold),
        "open_ended": target.open_ended,
        "confidence": number(goal.confidence),
        "candidates_evaluated": status.candidates_evaluated,
        "seeds_used": status.seeds_used,
        "elapsed_seconds": number(status.elapsed_seconds),
        "message": status.message,
        "report_path": status.report_path,
        "leaderboard": status.leaderboard.iter().map(|e| {
            let a = e.aggregate.clone().unwrap_or_default();
            serde_json::json!({
                "rank": e.rank,
                "candidate_id": e.candidate_id,
                "name": e.name,
                "n": a.n,
                "mean": number(a.mean),
                "ci_low": number(a.ci_low),
                "ci_high": number(a.ci_high),
                "p_value": number(e.p_value),
                "adjusted_p_value": number(e.adjusted_p_value),
                "decision": decision_name(e.decision),
            })
        }).collect::<Vec<_>>(),
    })
}

pub(super) fn print_status(status: &pb::ResearchStatus, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&status_json(status))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "rank",
        "candidate",
        "n",
        "mean",
        "CI low",
        "CI high",
        "p",
        "Holm p",
        "decision",
    ]);
    for entry in &status.leaderboard {
        let a = entry.aggregate.clone().unwrap_or_default();
        let stat = |value: f64| {
            if a.n == 0 {
                "–".to_owned()
            } else {
                cell(value)
            }
        };
        table.add_row([
            entry.rank.to_string(),
            entry.name.clone(),
            a.n.to_string(),
            stat(a.mean),
            stat(a.ci_low),
            stat(a.ci_high),
            cell(entry.p_value),
            cell(entry.adjusted_p_value),
            decision_name(entry.decision).to_owned(),
        ]);
    }
    println!("{table}");
    println!(
        "research {}: {} — {}",
        status.research_id,
        state_name(status.state),
        status.message
    );
    println!(
        "{} candidates evaluated, {} seeds, {:.1} s",
        status.candidates_evaluated, status.seeds_used, status.elapsed_seconds
    );
    if !status.report_path.is_empty() {
        println!("report: {}/report.md", status.report_path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_names_and_cells_say_what_happened() {
        assert_eq!(exit_code(pb::ResearchState::Succeeded), 0);
        assert_eq!(exit_code(pb::ResearchState::Completed), 0);
        assert_eq!(exit_code(pb::ResearchState::Exhausted), 2);
        assert_eq!(exit_code(pb::ResearchState::Paused), 3);
        assert_eq!(exit_code(pb::ResearchState::Failed), 1);
        assert_eq!(state_name(pb::ResearchState::Paused as i32), "PAUSED");
        assert_eq!(state_name(99), "UNKNOWN");
        assert_eq!(strategy_name(pb::Strategy::Hybrid as i32), "hybrid");
        assert_eq!(cell(f64::NAN), "–");
        assert_eq!(cell(0.91234), "0.9123");
        assert_eq!(number(f64::INFINITY), serde_json::Value::Null);
        assert_eq!(first_line("a long first line\nsecond", 6), "a long…");
        assert_eq!(first_line("ünïcødé", 3), "ünï…");
    }

    #[test]
    fn status_json_has_no_nan() {
        let status = pb::ResearchStatus {
            research_id: "exp_1".into(),
            state: pb::ResearchState::Running as i32,
            leaderboard: vec![pb::LeaderboardEntry {
                rank: 1,
                p_value: f64::NAN,
                adjusted_p_value: f64::NAN,
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = status_json(&status);
        let text = json.to_string();
        assert!(!text.contains("NaN"), "{text}");
        assert_eq!(json["state"], "RUNNING", "{text}");
    }
}
