//! Priority prediction for tasks created without one.
//!
//! A multinomial naive Bayes model over the words of the title and description plus a token for
//! how soon the task is due, trained on this deployment's tasks whose priority a person set
//! (`priority_source = 'user'`). It is retrained when labelled tasks have grown by
//! [`RETRAIN_EVERY`] since the last model, or on an admin's request, and kept in the
//! database. Training holds out every fifth task (by id) and reports the model's accuracy on
//! them next to the majority-class baseline. Until there are [`MIN_SAMPLES`] labelled tasks of
//! at least two priorities, or when the newest model does not beat its baseline, the documented
//! [`heuristic`] decides.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::task::{Priority, PrioritySource};

/// Labelled tasks needed before a model is trained.
pub const MIN_SAMPLES: i64 = 30;
/// New labelled tasks that trigger retraining.
pub const RETRAIN_EVERY: i64 = 50;

/// The heuristic used before there is a model: words that signal urgency, then due-date
/// proximity, then words that signal low priority; otherwise `normal`.
pub fn heuristic(title: &str, description: &str, due_at: Option<DateTime<Utc>>) -> Priority {
    let text = format!("{title} {description}").to_lowercase();
    let has = |words: &[&str]| tokens(&text).any(|t| words.contains(&t.as_str()));
    if has(&[
        "urgent",
        "asap",
        "outage",
        "critical",
        "emergency",
        "immediately",
        "blocker",
        "down",
    ]) {
        return Priority::Urgent;
    }
    let hours = due_at.map(|d| (d - Utc::now()).num_hours());
    if matches!(hours, Some(h) if h < 24) {
        return Priority::High;
    }
    if has(&[
        "bug",
        "broken",
        "fix",
        "error",
        "fails",
        "failing",
        "security",
        "important",
    ]) || matches!(hours, Some(h) if h < 72)
    {
        return Priority::High;
    }
    if has(&["someday", "maybe", "idea", "later", "wishlist", "nice"]) {
        return Priority::Low;
    }
    Priority::Normal
}

fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.len() > 1)
        .map(str::to_lowercase)
}

/// Words plus a due-proximity token.
fn features(
    title: &str,
    description: &str,
    due_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut features: Vec<String> = tokens(title).chain(tokens(description)).collect();
    let due = match due_at.map(|d| (d - now).num_hours()) {
        None => "__due_none",
        Some(h) if h < 24 => "__due_day",
        Some(h) if h < 72 => "__due_3days",
        Some(h) if h < 24 * 7 => "__due_week",
        Some(_) => "__due_later",
    };
    features.push(due.to_string());
    features
}

/// A trained model: log priors and per-class word log-likelihoods (Laplace-smoothed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    log_prior: HashMap<String, f64>,
    log_likelihood: HashMap<String, HashMap<String, f64>>,
    /// Log-likelihood of a word a class never saw.
    log_unseen: HashMap<String, f64>,
}

/// One labelled example.
pub struct Sample {
    pub id: Uuid,
    pub features: Vec<String>,
    pub label: String,
}

impl Model {
    pub fn train(samples: &[&Sample]) -> Self {
        let mut class_docs: HashMap<String, f64> = HashMap::new();
        let mut counts: HashMap<String, HashMap<String, f64>> = HashMap::new();
        let mut vocabulary: std::collections::HashSet<&str> = Default::default();
        for sample in samples {
            *class_docs.entry(sample.label.clone()).or_default() += 1.0;
            let class = counts.entry(sample.label.clone()).or_default();
            for feature in &sample.features {
                *class.entry(feature.clone()).or_default() += 1.0;
                vocabulary.insert(feature);
            }
        }
        let total = samples.len() as f64;
        let v = vocabulary.len() as f64;
        let mut model = Model {
            log_prior: HashMap::new(),
            log_likelihood: HashMap::new(),
            log_unseen: HashMap::new(),
        };
        for (class, docs) in &class_docs {
            model.log_prior.insert(class.clone(), (docs / total).ln());
            let words = &counts[class];
            let sum: f64 = words.values().sum();
            let denominator = sum + v;
            model.log_likelihood.insert(
                class.clone(),
                words
                    .iter()
                    .map(|(w, c)| (w.clone(), ((c + 1.0) / denominator).ln()))
                    .collect(),
            );
            model
                .log_unseen
                .insert(class.clone(), (1.0 / denominator).ln());
        }
        model
    }

    pub fn predict(&self, features: &[String]) -> String {
        let score = |class: &String| {
            let words = &self.log_likelihood[class];
            let unseen = self.log_unseen[class];
            self.log_prior[class]
                + features
                    .iter()
                    .map(|f| words.get(f).copied().unwrap_or(unseen))
                    .sum::<f64>()
        };
        self.log_prior
            .keys()
            .max_by(|a, b| score(a).total_cmp(&score(b)).then_with(|| b.cmp(a)))
            .cloned()
            .unwrap_or_else(|| "normal".into())
    }
}

/// The report of one training run.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub trained_at: DateTime<Utc>,
    /// Labelled tasks used, training and held out together.
    pub samples: i32,
    /// Share of held-out tasks the model labels right.
    pub accuracy: f64,
    /// Share the majority class of the training split gets right on the same held-out tasks.
    pub baseline_accuracy: f64,
    /// Whether new tasks get the model's prediction (it beats the baseline) or the heuristic's.
    pub in_use: bool,
}

/// Every fifth task (by id) is held out for evaluation.
fn held_out(id: &Uuid) -> bool {
    id.as_u128().is_multiple_of(5)
}

/// A task whose priority a person set: id, title, description, due date, creation, priority.
pub type LabelledRow = (
    Uuid,
    String,
    String,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    String,
);

/// Trains on `rows` (every user-labelled task): the model to keep (trained on all of them) and
/// the report of a run that held out every fifth. `None` when there are too few labelled tasks
/// or only one priority among them.
pub fn train(rows: Vec<LabelledRow>) -> Option<(Model, Report)> {
    let samples: Vec<Sample> = rows
        .into_iter()
        .map(
            |(id, title, description, due_at, created_at, label)| Sample {
                id,
                // Due proximity as it was when the task was created.
                features: features(&title, &description, due_at, created_at),
                label,
            },
        )
        .collect();
    let labels: std::collections::HashSet<&str> =
        samples.iter().map(|s| s.label.as_str()).collect();
    if (samples.len() as i64) < MIN_SAMPLES || labels.len() < 2 {
        return None;
    }
    let (test, train): (Vec<&Sample>, Vec<&Sample>) = samples.iter().partition(|s| held_out(&s.id));
    if test.is_empty() || train.is_empty() {
        return None;
    }
    let model = Model::train(&train);
    let mut majority: HashMap<&str, usize> = HashMap::new();
    for s in &train {
        *majority.entry(s.label.as_str()).or_default() += 1;
    }
    let majority = majority
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    let right = |predict: &dyn Fn(&Sample) -> String| {
        test.iter().filter(|s| predict(s) == s.label).count() as f64 / test.len() as f64
    };
    let accuracy = right(&|s| model.predict(&s.features));
    let baseline_accuracy = right(&|_| majority.clone());
    // The stored model learns from every labelled task; the report is from the held-out run.
    let all: Vec<&Sample> = samples.iter().collect();
    let full = Model::train(&all);
    let report = Report {
        trained_at: Utc::now(),
        samples: samples.len() as i32,
        accuracy,
        baseline_accuracy,
        in_use: accuracy > baseline_accuracy,
    };
    Some((full, report))
}

/// The deployment's current model, loaded once for several predictions (a bulk creation).
pub struct Predictor(pub Option<Model>);

impl Predictor {
    /// A priority and where it came from (the model or the heuristic).
    pub fn predict(
        &self,
        title: &str,
        description: &str,
        due_at: Option<DateTime<Utc>>,
    ) -> (Priority, PrioritySource) {
        if let Some(model) = &self.0 {
            let predicted = model.predict(&features(title, description, due_at, Utc::now()));
            if let Ok(priority) = predicted.parse() {
                return (priority, PrioritySource::Model);
            }
        }
        (
            heuristic(title, description, due_at),
            PrioritySource::Heuristic,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heuristic_reads_urgency_words_and_due_dates() {
        assert_eq!(heuristic("Prod is DOWN", "", None).as_str(), "urgent");
        assert_eq!(
            heuristic("Tidy up", "", Some(Utc::now() + chrono::Duration::hours(3))).as_str(),
            "high"
        );
        assert_eq!(heuristic("Fix the flaky test", "", None).as_str(), "high");
        assert_eq!(heuristic("Idea: dark mode", "", None).as_str(), "low");
        assert_eq!(
            heuristic("Write the newsletter", "", None).as_str(),
            "normal"
        );
    }

    #[test]
    fn naive_bayes_learns_a_word_signal() {
        let now = Utc::now();
        let make = |i: u128, words: &str, label: &str| Sample {
            id: Uuid::from_u128(i),
            features: features(words, "", None, now),
            label: label.into(),
        };
        let samples: Vec<Sample> = (0..60)
            .map(|i| match i % 3 {
                0 => make(i, "invoice paperwork filing", "low"),
                1 => make(i, "pager incident production", "urgent"),
                _ => make(i, "meeting notes review", "normal"),
            })
            .collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        let model = Model::train(&refs);
        assert_eq!(
            model.predict(&features("incident in production", "", None, now)),
            "urgent"
        );
        assert_eq!(
            model.predict(&features("file the invoice", "", None, now)),
            "low"
        );
    }
}
