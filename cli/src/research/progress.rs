//! Following a session in the terminal: progress bars per candidate and seed, and the search
//! made visible (which parent was mutated how, what improved).

use super::*;

/// Progress bars: one line per candidate, one bar per running seed.
pub(super) struct Progress {
    bars: MultiProgress,
    /// Bars on a terminal; plain lines otherwise (logs, pipes); nothing with --json.
    terminal: bool,
    quiet: bool,
    seeds: HashMap<(String, u64), ProgressBar>,
    names: HashMap<String, (String, u32)>,
    current: String,
    metric: String,
    style: ProgressStyle,
}

impl Progress {
    pub(super) fn new(quiet: bool) -> Self {
        let bars = MultiProgress::new();
        let terminal = std::io::stderr().is_terminal();
        if quiet || !terminal {
            bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Self {
            bars,
            terminal,
            quiet,
            seeds: HashMap::new(),
            names: HashMap::new(),
            current: String::new(),
            metric: String::new(),
            style: ProgressStyle::with_template(
                "  {prefix:>22} [{bar:25}] epoch {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        }
    }

    pub(super) fn note(&self, line: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        if self.terminal {
            let _ = self.bars.println(line.as_ref());
        } else {
            eprintln!("{}", line.as_ref());
        }
    }

    pub(super) fn show(&mut self, event: pb::ResearchEvent) {
        use pb::research_event::Event;
        match event.event {
            Some(Event::GoalParsed(goal)) => {
                self.metric = goal.target.map(|t| t.metric).unwrap_or_default();
            }
            Some(Event::CandidateProposed(proposed)) => {
                let model = proposed.model.unwrap_or_default();
                let epochs = proposed.train.map_or(0, |t| t.epochs);
                self.names
                    .insert(proposed.candidate_id.clone(), (model.name.clone(), epochs));
                self.current = proposed.candidate_id;
                self.note(format!(
                    "▶ {} ({}): {}",
                    model.name,
                    strategy_name(proposed.strategy),
                    first_line(&proposed.rationale, 160)
                ));
            }
            Some(Event::CandidateRejected(rejected)) => {
                self.note(format!(
                    "  ✗ rejected: {}",
                    first_line(&rejected.reason, 200)
                ));
            }
            Some(Event::Evaluation(evaluation)) => self.evaluation(evaluation),
            Some(Event::Decision(decision)) => {
                if decision.action != "continue" {
                    self.note(format!(
                        "  ◆ {}: {}",
                        decision.action,
                        first_line(&decision.reasoning, 200)
                    ));
                }
            }
            Some(Event::Finished(_)) | None => {}
        }
    }

    pub(super) fn evaluation(&mut self, event: ev::EvaluateEvent) {
        use ev::evaluate_event::Event;
        let candidate = self.current.clone();
        let (name, epochs) = self
            .names
            .get(&candidate)
            .cloned()
            .unwrap_or_else(|| (candidate.clone(), 0));
        match event.event {
            Some(Event::SeedStarted(started)) => {
                let bar = self.bars.add(ProgressBar::new(u64::from(epochs)));
                bar.set_style(self.style.clone());
                bar.set_prefix(format!("{} seed {}", short(&name, 14), started.seed));
                bar.enable_steady_tick(Duration::from_millis(250));
                self.seeds.insert((candidate, started.seed), bar);
            }
            Some(Event::SeedEpoch(epoch)) => {
                if let Some(bar) = self.seeds.get(&(candidate, epoch.seed)) {
                    bar.set_position(epoch.epoch);
                    if let Some(value) = epoch.metrics.get(&self.metric) {
                        bar.set_message(format!("{} {value:.4}", self.metric));
                    }
                }
            }
            Some(Event::SeedFinished(finished)) => {
                if let Some(bar) = self.seeds.remove(&(candidate, finished.seed)) {
                    bar.finish_and_clear();
                }
                let state = common::TrialState::try_from(finished.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("TRIAL_STATE_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                let value = finished
                    .final_metrics
                    .get(&self.metric)
                    .map(|v| format!(" {} {v:.4}", self.metric))
                    .unwrap_or_default();
                let wall = finished.usage.map(|u| u.wall_seconds).unwrap_or(0.0);
                self.note(format!(
                    "    seed {}: {state}{value} ({wall:.1} s){}",
                    finished.seed,
                    if finished.message.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", first_line(&finished.message, 120))
                    }
                ));
            }
            Some(Event::Result(result)) => {
                let a = result.aggregate.unwrap_or_default();
                self.note(format!(
                    "  = {}: {} mean {:.4} over {} seeds, CI [{:.4}, {:.4}], p = {:.4}: {}",
                    name,
                    a.metric,
                    a.mean,
                    a.n,
                    a.ci_low,
                    a.ci_high,
                    result.p_value,
                    decision_name(result.decision)
                ));
            }
            None => {}
        }
    }

    pub(super) fn clear(&self) {
        for bar in self.seeds.values() {
            bar.finish_and_clear();
        }
        let _ = self.bars.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn research(event: pb::research_event::Event) -> pb::ResearchEvent {
        pb::ResearchEvent {
            event: Some(event),
            ..Default::default()
        }
    }

    fn evaluation(event: ev::evaluate_event::Event) -> pb::ResearchEvent {
        research(pb::research_event::Event::Evaluation(ev::EvaluateEvent {
            event: Some(event),
        }))
    }

    #[test]
    fn a_seed_gets_a_bar_of_its_epochs_that_follows_it_and_goes_when_it_ends() {
        let mut progress = Progress::new(true);
        progress.show(research(pb::research_event::Event::CandidateProposed(
            pb::CandidateProposed {
                candidate_id: "cand_1".into(),
                model: Some(common::ModelSpec {
                    name: "c02-mlp".into(),
                    ..Default::default()
                }),
                train: Some(common::TrainSpec {
                    epochs: 3,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )));
        assert_eq!(
            progress.names.get("cand_1"),
            Some(&("c02-mlp".to_owned(), 3))
        );
        progress.show(evaluation(ev::evaluate_event::Event::SeedStarted(
            ev::SeedStarted {
                seed: 1,
                ..Default::default()
            },
        )));
        let key = ("cand_1".to_owned(), 1);
        assert_eq!(progress.seeds.get(&key).and_then(|b| b.length()), Some(3));
        progress.show(evaluation(ev::evaluate_event::Event::SeedEpoch(
            ev::SeedEpoch {
                seed: 1,
                epoch: 2,
                ..Default::default()
            },
        )));
        assert_eq!(progress.seeds.get(&key).map(|b| b.position()), Some(2));
        progress.show(evaluation(ev::evaluate_event::Event::SeedFinished(
            ev::SeedResult {
                seed: 1,
                ..Default::default()
            },
        )));
        assert!(progress.seeds.is_empty(), "the finished seed's bar is gone");
        progress.clear();
    }
}
