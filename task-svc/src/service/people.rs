//! People by name for a person picker and for pages that show who owns, is assigned or changed
//! something: only those the caller may see (see [`crate::store::people`]).

use shared::identity::Identity;

use crate::{
    domain::person::{PeopleQuery, Person, Wanted},
    error::TaskError,
    store, AppState,
};

/// The people `query` asks for, as `identity` may see them.
pub async fn people(
    state: &AppState,
    identity: &Identity,
    query: PeopleQuery,
) -> Result<Vec<Person>, TaskError> {
    let wanted = query.wanted()?;
    let (me, admin) = (identity.user_id, identity.is_admin());
    let mut conn = state.pool.acquire().await?;
    Ok(match wanted {
        Wanted::Search { contains, prefix } => {
            store::people::search(&mut conn, me, admin, &contains, &prefix).await?
        }
        Wanted::Named(ids) => store::people::named(&mut conn, me, admin, &ids).await?,
    })
}
