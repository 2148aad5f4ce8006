//! One span per SQL statement, made from the event sqlx writes when a statement finishes
//! (target `sqlx::query`): named `{operation} {table}` (`INSERT outbox`), with the statement's
//! kind and rows, never its values. Only inside a span of this process (a request, an event
//! being handled, a job's run).

use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use tracing::field::{Field, Visit};
use tracing_subscriber::{layer::Context, Layer};

use super::span::{Kind, Span};

/// The target of sqlx's statement events.
pub const TARGET: &str = "sqlx::query";

/// The layer that turns sqlx's statement events into spans.
pub struct SqlSpans;

impl<S: tracing::Subscriber> Layer<S> for SqlSpans {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(summary) = fields.summary else {
            return;
        };
        let (operation, table) = statement(&summary);
        let end = SystemTime::now();
        let start = end
            .checked_sub(Duration::from_secs_f64(fields.elapsed_secs.max(0.0)))
            .unwrap_or(end);
        let name = match table {
            Some(ref table) => format!("{operation} {table}"),
            None => operation.clone(),
        };
        let span = Span::child(name, Kind::Client, Some(start), || {
            let mut attributes = vec![
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.operation.name", operation),
            ];
            attributes.extend(table.map(|t| KeyValue::new("db.collection.name", t)));
            attributes.extend(
                fields
                    .rows
                    .map(|rows| KeyValue::new("db.response.returned_rows", rows)),
            );
            attributes
        });
        span.end_at(end);
    }
}

#[derive(Default)]
struct Fields {
    summary: Option<String>,
    elapsed_secs: f64,
    rows: Option<i64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.summary = Some(value.to_string());
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "rows_returned" {
            self.rows = i64::try_from(value).ok();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.summary = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

/// A statement's operation (upper case) and the table it writes or reads first, from its
/// first words: `INSERT INTO outbox …` is (`INSERT`, `outbox`).
fn statement(summary: &str) -> (String, Option<String>) {
    let mut words = summary.split_whitespace();
    let operation = words.next().unwrap_or("SQL").to_ascii_uppercase();
    let rest: Vec<&str> = words.collect();
    let after = |keyword: &str| {
        rest.iter()
            .position(|w| w.eq_ignore_ascii_case(keyword))
            .and_then(|i| rest.get(i + 1))
    };
    let table = match operation.as_str() {
        "INSERT" => after("INTO"),
        "UPDATE" => rest.first(),
        "DELETE" | "SELECT" => after("FROM"),
        _ => None,
    };
    let table = table
        .map(|t| t.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')))
        .filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        })
        .map(str::to_string);
    (operation, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_named_by_its_kind_and_table() {
        let named = |s| statement(s);
        assert_eq!(
            named("INSERT INTO outbox (id, …"),
            ("INSERT".into(), Some("outbox".into()))
        );
        assert_eq!(
            named("update jobs SET state = …"),
            ("UPDATE".into(), Some("jobs".into()))
        );
        assert_eq!(
            named("DELETE FROM tasks WHERE …"),
            ("DELETE".into(), Some("tasks".into()))
        );
        assert_eq!(named("SELECT 1"), ("SELECT".into(), None));
        assert_eq!(named("BEGIN"), ("BEGIN".into(), None));
        assert_eq!(named("WITH due AS (SELECT …"), ("WITH".into(), None));
    }
}
