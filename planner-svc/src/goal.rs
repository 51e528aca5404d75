//! Research goals in words: "Design a CNN for CIFAR-10 with >75% accuracy", "MLP on titanic at
//! least 0.8 accuracy within 20 candidates", "lowest validation loss on sst2" → dataset, metric,
//! threshold, direction, seeds, budget and model family.
//!
//! The parser is plain rules over words and numbers, not a language model: every number is
//! classified by the word after it (candidates, seeds, minutes, % confidence) or before it
//! (confidence), the rest is the threshold. The dataset is the longest catalog name found in
//! the text (ignoring case, spaces, '-' and '_', so "CIFAR-10" and "cifar 10" are `cifar10`),
//! unless the text names the researcher's own files ("on /data/mine.csv", "images:./pets"; see
//! `ra_client::local_data`).
//! Anything it cannot place is an error listing what it did understand, so the user can fix
//! the sentence or pass explicit flags instead.

use ra_proto::common::v1 as common;

/// A goal understood from text; `None` where the text said nothing (the planner's defaults or
/// explicit flags fill those).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedGoal {
    pub text: String,
    pub dataset: String,
    /// A metric ra-trainer reports: val_accuracy, val_loss, val_macro_f1, test_… .
    pub metric: String,
    /// `None` for open-ended goals ("lowest validation loss"): search until the budget ends.
    pub threshold: Option<f64>,
    pub direction: common::Direction,
    pub confidence: Option<f64>,
    pub num_seeds: Option<u32>,
    pub max_candidates: Option<u32>,
    pub max_wall_seconds: Option<u64>,
    /// "cnn", "mlp", "resnet" or "text".
    pub model_family: Option<String>,
}

/// Why a goal could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GoalError {
    #[error("the goal is empty: describe it, e.g. \"a CNN for cifar10 with >75% accuracy\"")]
    Empty,
    #[error("no known dataset in the goal{}; known datasets: {} (or your own: csv:PATH, tsv:PATH, parquet:PATH, images:DIR, text:PATH). Understood so far: {understood}",
        mentioned.as_ref().map(|m| format!(" (\"{m}\" is not one)")).unwrap_or_default(),
        known.join(", "))]
    UnknownDataset {
        mentioned: Option<String>,
        known: Vec<String>,
        understood: String,
    },
    #[error(
        "the goal names two thresholds ({first} and {second}); give one. Understood so far: {understood}"
    )]
    TwoThresholds {
        first: f64,
        second: f64,
        understood: String,
    },
    #[error("{message}. Understood so far: {understood}")]
    Invalid { message: String, understood: String },
}

/// A percentage as a rate, without binary noise (99.9 → 0.999, not 0.9990000000000001).
fn as_rate(value: f64) -> f64 {
    (value * 1e7).round() / 1e9
}

/// Lower case with '-' and '_' removed: how names are compared.
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The longest catalog name in `text`, and the text with that mention blanked out (so that
/// the "10" of "CIFAR-10" is not read as a number).
fn find_dataset(text: &str, datasets: &[&str]) -> Option<(String, String)> {
    // Map each squashed character back to its byte range in the original text.
    let mut squashed = String::new();
    let mut origin: Vec<(usize, usize)> = Vec::new();
    for (index, c) in text.char_indices() {
        if matches!(c, '-' | '_' | ' ') {
            continue;
        }
        // One origin entry per byte of `squashed`, so that a byte offset found in it indexes
        // `origin` (lower-casing can change a character's length: 'İ' → "i̇").
        for lower in c.to_lowercase() {
            squashed.push(lower);
            origin.extend(std::iter::repeat_n(
                (index, index + c.len_utf8()),
                lower.len_utf8(),
            ));
        }
    }
    let mut best: Option<(&str, usize, usize)> = None;
    for name in datasets {
        let key = squash(name);
        if key.is_empty() {
            continue;
        }
        let mut from = 0;
        while let Some(found) = squashed[from..].find(&key) {
            let start = from + found;
            let end = start + key.len();
            // Whole words only: "mnist" inside "fashionmnist" does not count.
            let before_ok = start == 0
                || !squashed[..start]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
                || text[..origin[start].0].ends_with([' ', '-', '_']);
            let after_ok = end == squashed.len()
                || !squashed[end..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric)
                || text[origin[end - 1].1..].starts_with([' ', '-', '_']);
            if before_ok && after_ok && best.is_none_or(|(b, _, _)| squash(b).len() < key.len()) {
                best = Some((name, start, end));
            }
            // The next search starts after this match's first character (a char boundary).
            from = start + squashed[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    let (name, start, end) = best?;
    let (byte_start, byte_end) = (origin[start].0, origin[end - 1].1);
    let blanked = format!("{} {}", &text[..byte_start], &text[byte_end..]);
    Some((name.to_string(), blanked))
}

/// Words and numbers of the text, lower case; "75%" gives the number 0.75 marked as a percent.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number { value: f64, percent: bool },
    Symbol(char),
}

fn tokens(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let literal: String = chars[start..i].iter().collect();
            let literal = literal.trim_end_matches('.');
            if let Ok(value) = literal.parse::<f64>() {
                let mut j = i;
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let percent = chars.get(j) == Some(&'%');
                if percent {
                    i = j + 1;
                }
                tokens.push(Token::Number { value, percent });
            }
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Word(
                chars[start..i].iter().collect::<String>().to_lowercase(),
            ));
        } else {
            if matches!(c, '>' | '<' | '≥' | '≤' | '=') {
                tokens.push(Token::Symbol(c));
            }
            i += 1;
        }
    }
    tokens
}

fn word_at(tokens: &[Token], index: usize) -> Option<&str> {
    match tokens.get(index) {
        Some(Token::Word(word)) => Some(word.as_str()),
        _ => None,
    }
}

fn has_word(tokens: &[Token], words: &[&str]) -> bool {
    tokens
        .iter()
        .any(|t| matches!(t, Token::Word(w) if words.contains(&w.as_str())))
}

/// Parses `text` against the catalog `datasets`.
pub fn parse_goal(text: &str, datasets: &[&str]) -> Result<ParsedGoal, GoalError> {
    parse_goal_on(text, datasets, None)
}

/// [`parse_goal`], with `dataset` (named elsewhere, e.g. `--dataset csv:my.csv`) used when the
/// words name none.
pub fn parse_goal_on(
    text: &str,
    datasets: &[&str],
    dataset: Option<&str>,
) -> Result<ParsedGoal, GoalError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(GoalError::Empty);
    }
    let all = tokens(trimmed);
    let (metric, direction) = metric_and_direction(&all);
    let mut goal = ParsedGoal {
        text: trimmed.to_owned(),
        dataset: String::new(),
        metric,
        threshold: None,
        direction,
        confidence: None,
        num_seeds: None,
        max_candidates: None,
        max_wall_seconds: None,
        model_family: model_family(&all),
    };
    let found = match ra_client::local_data::LocalDataset::find_in_text(trimmed) {
        Some((local, range)) => Some((
            local.name(),
            format!("{} {}", &trimmed[..range.start], &trimmed[range.end..]),
        )),
        None => find_dataset(trimmed, datasets),
    }
    .or_else(|| dataset.map(|name| (name.to_owned(), trimmed.to_owned())));
    let Some((dataset, rest)) = found else {
        return Err(unknown_dataset(&all, datasets, &goal));
    };
    goal.dataset = dataset;
    let rest = tokens(&rest);
    for (index, token) in rest.iter().enumerate() {
        if let Token::Number { value, percent } = *token {
            apply_number(&mut goal, &rest, index, value, percent)?;
        }
    }
    check_ranges(&goal)?;
    Ok(goal)
}

/// The model family the words ask for, if any.
fn model_family(all: &[Token]) -> Option<String> {
    if has_word(all, &["cnn", "cnns", "convnet", "convolutional", "vgg"]) {
        Some("cnn")
    } else if has_word(all, &["resnet", "residual"]) {
        Some("resnet")
    } else if has_word(all, &["mlp", "perceptron", "feedforward", "dense"]) {
        Some("mlp")
    } else if has_word(all, &["embedding", "embeddings", "bag"]) {
        Some("text")
    } else {
        None
    }
    .map(str::to_owned)
}

/// The metric (accuracy unless loss or F1 is named; the test split when "test" is) and the
/// direction (the metric's own, or lower when the words say so).
fn metric_and_direction(all: &[Token]) -> (String, common::Direction) {
    let split = if has_word(all, &["test"]) {
        "test"
    } else {
        "val"
    };
    let (metric, natural) = if has_word(all, &["loss", "cross", "entropy"]) {
        (format!("{split}_loss"), common::Direction::Minimize)
    } else if has_word(all, &["f1", "macro"]) {
        (format!("{split}_macro_f1"), common::Direction::Maximize)
    } else {
        (format!("{split}_accuracy"), common::Direction::Maximize)
    };
    let wants_low = has_word(
        all,
        &[
            "lowest", "minimize", "minimise", "below", "under", "less", "smaller", "lower",
        ],
    ) || all.contains(&Token::Symbol('<'))
        || all.contains(&Token::Symbol('≤'));
    let direction = if natural == common::Direction::Minimize || wants_low {
        common::Direction::Minimize
    } else {
        common::Direction::Maximize
    };
    (metric, direction)
}

/// The refusal when no catalog dataset is named: the word that looked like one, and the names
/// that exist.
fn unknown_dataset(all: &[Token], datasets: &[&str], goal: &ParsedGoal) -> GoalError {
    let mentioned = ["on", "for", "with"].iter().find_map(|preposition| {
        all.windows(2).find_map(|pair| match pair {
            [Token::Word(p), Token::Word(name)]
                if p == preposition && !["a", "an", "the"].contains(&name.as_str()) =>
            {
                Some(name.clone())
            }
            _ => None,
        })
    });
    let mut known: Vec<String> = datasets.iter().map(|d| (*d).to_owned()).collect();
    known.sort();
    GoalError::UnknownDataset {
        mentioned,
        known,
        understood: understood(goal),
    }
}

/// One number of the goal, read by the word after it (candidates, seeds, minutes, confidence)
/// or, failing that, as the threshold.
fn apply_number(
    goal: &mut ParsedGoal,
    rest: &[Token],
    index: usize,
    value: f64,
    percent: bool,
) -> Result<(), GoalError> {
    let next = word_at(rest, index + 1).unwrap_or("");
    let previous = index
        .checked_sub(1)
        .and_then(|i| word_at(rest, i))
        .unwrap_or("");
    let whole = |what: &str, goal: &ParsedGoal| -> Result<u32, GoalError> {
        if value.fract() == 0.0 && value >= 1.0 && value <= f64::from(u32::MAX) {
            Ok(value as u32)
        } else {
            Err(GoalError::Invalid {
                message: format!("{value} {what} is not a positive whole number"),
                understood: understood(goal),
            })
        }
    };
    let rate = if percent || value > 1.0 {
        as_rate(value)
    } else {
        value
    };
    match next {
        "candidates" | "candidate" | "models" | "architectures" | "trials" | "proposals" => {
            goal.max_candidates = Some(whole("candidates", goal)?);
        }
        "seeds" | "seed" | "runs" => goal.num_seeds = Some(whole("seeds", goal)?),
        "minutes" | "minute" | "min" | "mins" => {
            goal.max_wall_seconds = Some(u64::from(whole("minutes", goal)?) * 60);
        }
        "hours" | "hour" | "h" => {
            goal.max_wall_seconds = Some(u64::from(whole("hours", goal)?) * 3600)
        }
        "seconds" | "second" | "s" => {
            goal.max_wall_seconds = Some(u64::from(whole("seconds", goal)?))
        }
        "confidence" | "confident" => goal.confidence = Some(rate),
        _ if previous == "confidence" => goal.confidence = Some(rate),
        _ => {
            let is_rate = goal.metric.ends_with("accuracy") || goal.metric.ends_with("f1");
            let threshold = if percent || (is_rate && value > 1.0) {
                as_rate(value)
            } else {
                value
            };
            if let Some(first) = goal.threshold
                && first != threshold
            {
                return Err(GoalError::TwoThresholds {
                    first,
                    second: threshold,
                    understood: understood(goal),
                });
            }
            goal.threshold = Some(threshold);
        }
    }
    Ok(())
}

/// A confidence in (0.5, 1) and an accuracy or F1 threshold in [0, 1].
fn check_ranges(goal: &ParsedGoal) -> Result<(), GoalError> {
    if let Some(confidence) = goal.confidence
        && !(confidence > 0.5 && confidence < 1.0)
    {
        return Err(GoalError::Invalid {
            message: format!("a confidence of {confidence} is outside (0.5, 1)"),
            understood: understood(goal),
        });
    }
    if let Some(threshold) = goal.threshold
        && (goal.metric.ends_with("accuracy") || goal.metric.ends_with("f1"))
        && !(0.0..=1.0).contains(&threshold)
    {
        return Err(GoalError::Invalid {
            message: format!(
                "{} cannot reach {threshold}: accuracies lie in [0, 1]",
                goal.metric
            ),
            understood: understood(goal),
        });
    }
    Ok(())
}

/// What was understood, in words, for error messages.
fn understood(goal: &ParsedGoal) -> String {
    let mut parts = Vec::new();
    parts.push(if goal.dataset.is_empty() {
        "dataset ?".to_owned()
    } else {
        format!("dataset {}", goal.dataset)
    });
    let comparison = match goal.direction {
        common::Direction::Minimize => "<",
        _ => ">",
    };
    parts.push(match goal.threshold {
        Some(threshold) => format!("{} {comparison} {threshold}", goal.metric),
        None => format!(
            "{} ({}, no threshold)",
            goal.metric,
            if comparison == "<" {
                "lowest"
            } else {
                "highest"
            }
        ),
    });
    if let Some(family) = &goal.model_family {
        parts.push(format!("model family {family}"));
    }
    if let Some(seeds) = goal.num_seeds {
        parts.push(format!("{seeds} seeds"));
    }
    if let Some(candidates) = goal.max_candidates {
        parts.push(format!("at most {candidates} candidates"));
    }
    if let Some(seconds) = goal.max_wall_seconds {
        parts.push(format!("at most {seconds} s"));
    }
    if let Some(confidence) = goal.confidence {
        parts.push(format!("confidence {confidence}"));
    }
    parts.join(", ")
}

impl ParsedGoal {
    /// What was understood, in words.
    pub fn summary(&self) -> String {
        understood(self)
    }

    /// The proto form; open-ended goals are marked so, with an unreachable threshold (1 for
    /// rates, 0 for losses), so that the session searches until its budget ends and then
    /// answers with the best candidate found.
    pub fn to_proto(&self) -> common::ResearchGoal {
        let threshold = self.threshold.unwrap_or(match self.direction {
            common::Direction::Minimize => 0.0,
            _ => 1.0,
        });
        common::ResearchGoal {
            text: self.text.clone(),
            dataset: self.dataset.clone(),
            target: Some(common::Target {
                metric: self.metric.clone(),
                threshold,
                direction: self.direction as i32,
                open_ended: self.threshold.is_none(),
            }),
            confidence: self.confidence.unwrap_or(0.0),
            num_seeds: self.num_seeds.unwrap_or(0),
            max_seeds: 0,
            budget: Some(common::Budget {
                max_candidates: self.max_candidates.unwrap_or(0),
                max_total_seeds: 0,
                max_wall_seconds: self.max_wall_seconds.unwrap_or(0),
            }),
            model_family: self.model_family.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &[&str] = &[
        "synthetic",
        "shapes",
        "digits",
        "mnist",
        "fashion-mnist",
        "kmnist",
        "cifar10",
        "cifar100",
        "titanic",
        "adult",
        "sst2",
        "imdb",
    ];

    fn parse(text: &str) -> ParsedGoal {
        parse_goal(text, CATALOG).unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    #[test]
    fn the_issue_examples() {
        let cnn = parse("Design a CNN for CIFAR-10 with >75% accuracy");
        assert_eq!(cnn.dataset, "cifar10");
        assert_eq!(cnn.metric, "val_accuracy");
        assert_eq!(cnn.threshold, Some(0.75));
        assert_eq!(cnn.direction, common::Direction::Maximize);
        assert_eq!(cnn.model_family.as_deref(), Some("cnn"));

        let mlp = parse("MLP on titanic at least 0.8 accuracy within 20 candidates");
        assert_eq!(
            (mlp.dataset.as_str(), mlp.threshold),
            ("titanic", Some(0.8))
        );
        assert_eq!(mlp.max_candidates, Some(20));
        assert_eq!(mlp.model_family.as_deref(), Some("mlp"));

        let loss = parse("lowest validation loss on sst2");
        assert_eq!(
            (loss.dataset.as_str(), loss.metric.as_str()),
            ("sst2", "val_loss")
        );
        assert_eq!(loss.threshold, None);
        assert_eq!(loss.direction, common::Direction::Minimize);
        assert_eq!(loss.to_proto().target.map(|t| t.threshold), Some(0.0));
    }

    #[test]
    fn own_files_are_datasets_and_their_digits_are_not_numbers() {
        let goal =
            parse("an MLP on /data/mine2024.csv with at least 90% accuracy within 6 candidates");
        assert_eq!(goal.dataset, "csv:/data/mine2024.csv");
        assert_eq!(goal.threshold, Some(0.9));
        assert_eq!(goal.max_candidates, Some(6));
        let goal = parse("best accuracy on images:pets#size=32");
        assert_eq!(goal.dataset, "images:pets#size=32");
        assert_eq!(goal.threshold, None);
        let goal = parse_goal_on(
            "a model with at least 80% accuracy",
            CATALOG,
            Some("csv:my.csv"),
        )
        .expect("the dataset named elsewhere");
        assert_eq!(
            (goal.dataset.as_str(), goal.threshold),
            ("csv:my.csv", Some(0.8))
        );
    }

    #[test]
    fn numbers_are_placed_by_their_words() {
        let goal = parse("fashion mnist above 90 accuracy, 5 seeds, 99% confidence, 30 minutes");
        assert_eq!(
            goal.dataset, "fashion-mnist",
            "the longest name wins over mnist"
        );
        assert_eq!(goal.threshold, Some(0.9));
        assert_eq!(goal.num_seeds, Some(5));
        assert_eq!(goal.confidence, Some(0.99));
        assert_eq!(goal.max_wall_seconds, Some(1800));
        let goal = parse("cifar 100 test accuracy >= 0.5");
        assert_eq!(
            (goal.dataset.as_str(), goal.metric.as_str()),
            ("cifar100", "test_accuracy")
        );
        assert_eq!(goal.threshold, Some(0.5));
        let goal = parse("digits with loss below 0.2");
        assert_eq!(
            (goal.metric.as_str(), goal.threshold),
            ("val_loss", Some(0.2))
        );
    }

    #[test]
    fn bad_goals_say_what_was_understood() {
        assert_eq!(parse_goal("  ", CATALOG), Err(GoalError::Empty));
        let error =
            parse_goal("a CNN on imagenet with 80% accuracy", CATALOG).expect_err("unknown");
        let message = error.to_string();
        assert!(message.contains("\"imagenet\" is not one"), "{message}");
        assert!(
            message.contains("cifar10") && message.contains("model family cnn"),
            "{message}"
        );
        let error =
            parse_goal("mnist accuracy above 0.9 and above 0.95", CATALOG).expect_err("two");
        assert!(matches!(error, GoalError::TwoThresholds { .. }), "{error}");
        let error = parse_goal("mnist accuracy 1.5 with 1.5 seeds", CATALOG).expect_err("bad");
        assert!(error.to_string().contains("seeds"), "{error}");
        let error = parse_goal("mnist accuracy above 150", CATALOG).expect_err("bad");
        assert!(error.to_string().contains("[0, 1]"), "{error}");
    }

    #[test]
    fn the_reported_goal_with_an_em_dash_and_a_sign_parses() {
        // It panicked once (a byte offset used as a character index).
        match parse_goal("accuracy ≥ 0.9 — mnist", CATALOG) {
            Ok(goal) => assert_eq!(goal.dataset, "mnist"),
            Err(error) => assert!(error.to_string().contains("mnist"), "{error}"),
        }
        let goal = parse("an MLP for İ mnist with at least 90% accuracy");
        assert_eq!(goal.dataset, "mnist");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any text a user may type gives a goal or an error, never a panic.
        #[test]
        fn any_unicode_text_never_panics(text in "\\PC{0,80}") {
            let _ = parse_goal(&text, CATALOG);
        }

        /// Text built from goal words, numbers, symbols and odd characters (case-changing,
        /// combining, wide), in any order.
        #[test]
        fn goal_like_text_never_panics(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "mnist", "CIFAR-10", "fashion_mnist", "İ", "ẞ", "ǅ", "\u{301}", "—", "≥", "%",
                "75", "0.9", ".5", "at least", "accuracy", "loss", "below", "seeds", "within",
                "candidates", " ", "-", "_", "日本", "🙂", "\u{0}", "\n",
            ]),
            0..12,
        )) {
            let text: String = parts.concat();
            let _ = parse_goal(&text, CATALOG);
        }

        /// A dataset name between arbitrary words is still found, whatever surrounds it.
        #[test]
        fn a_named_dataset_is_found_between_any_words(
            before in "[\\p{L}\\p{M}≥—%0-9 ]{0,20}",
            after in "[\\p{L}\\p{M}≥—%0-9 ]{0,20}",
        ) {
            let text = format!("{before} titanic {after}");
            if let Ok(goal) = parse_goal(&text, CATALOG) {
                proptest::prop_assert!(CATALOG.contains(&goal.dataset.as_str()));
            }
        }
    }
}
