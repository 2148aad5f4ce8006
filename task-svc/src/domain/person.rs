//! People as other people see them: a name for an id, and the search a person picker runs.
//! Who may be named to whom is the store's rule (`store::people`); this checks the request.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::TaskError;

/// A person, by name.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Person {
    pub id: Uuid,
    pub display_name: String,
    /// False once deactivated (still named where they appear, not offered by a search).
    pub active: bool,
}

/// `GET /api/v1/people`: `q` searches names, `ids` names people; one of them.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeopleQuery {
    /// Part of a name (1 to 100 characters): active people who share a channel with the caller
    /// (everyone for an admin), and the caller, best match first, at most 20.
    pub q: Option<String>,
    /// Up to 100 comma-separated ids: the names of those the caller may see (themself, people
    /// sharing a channel, the owners and assignees of tasks the caller sees; anyone for an
    /// admin). Others are left out.
    pub ids: Option<String>,
}

/// Most people a search answers.
pub const SEARCH_LIMIT: i64 = 20;
/// Most ids one request names.
pub const MAX_IDS: usize = 100;
/// Longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// What a [`PeopleQuery`] asks.
#[derive(Debug, PartialEq)]
pub enum Wanted {
    /// The `ILIKE` pattern of a name search, and the prefix pattern ranked first.
    Search {
        contains: String,
        prefix: String,
    },
    Named(Vec<Uuid>),
}

fn bad(detail: &str) -> TaskError {
    TaskError::malformed("invalid_query", detail)
}

impl PeopleQuery {
    pub fn wanted(self) -> Result<Wanted, TaskError> {
        match (self.q, self.ids) {
            (Some(q), None) => {
                let q = shared::text::one_line(&q, MAX_QUERY_CHARS)
                    .ok_or_else(|| bad("q must be 1 to 100 characters on one line"))?;
                let escaped = shared::text::escape_like(q);
                Ok(Wanted::Search {
                    contains: format!("%{escaped}%"),
                    prefix: format!("{escaped}%"),
                })
            }
            (None, Some(ids)) => {
                let ids: Vec<Uuid> = ids
                    .split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(Uuid::parse_str)
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("ids must be comma-separated UUIDs"))?;
                if ids.is_empty() || ids.len() > MAX_IDS {
                    return Err(bad("ids must name 1 to 100 people"));
                }
                Ok(Wanted::Named(ids))
            }
            _ => Err(bad(
                "give either q (a name to search) or ids (people to name)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: Option<&str>, ids: Option<&str>) -> PeopleQuery {
        PeopleQuery {
            q: q.map(String::from),
            ids: ids.map(String::from),
        }
    }

    #[test]
    fn a_search_escapes_like_patterns_and_bounds_its_text() {
        assert_eq!(
            query(Some(" a_d% "), None).wanted().unwrap(),
            Wanted::Search {
                contains: "%a\\_d\\%%".into(),
                prefix: "a\\_d\\%%".into()
            }
        );
        assert!(query(Some("  "), None).wanted().is_err());
        assert!(query(Some(&"x".repeat(101)), None).wanted().is_err());
        assert!(query(Some(&"é".repeat(100)), None).wanted().is_ok());
    }

    #[test]
    fn ids_are_uuids_at_most_a_hundred_and_one_kind_of_question_at_a_time() {
        let id = Uuid::new_v4();
        assert_eq!(
            query(None, Some(&format!("{id}, {id},"))).wanted().unwrap(),
            Wanted::Named(vec![id, id])
        );
        assert!(query(None, Some("nope")).wanted().is_err());
        let many = vec![id.to_string(); 101].join(",");
        assert!(query(None, Some(&many)).wanted().is_err());
        assert!(query(None, Some("")).wanted().is_err());
        assert!(query(None, None).wanted().is_err());
        assert!(query(Some("a"), Some(&id.to_string())).wanted().is_err());
    }
}
