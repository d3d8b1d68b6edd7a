//! API keys, stored as SHA-256 hashes: the key itself is shown once, when it is created. A
//! browser signs in with a key once and then holds a session: a random id of its own (stored
//! hashed too), which ends at its expiry, on sign-out, or when its key is revoked.

use super::schema::*;
use super::StoreResult;
use diesel::prelude::*;
use diesel::PgConnection;
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Queryable)]
pub struct KeyRecord {
    pub prefix: String,
    pub role: String,
    pub supplier_id: Option<String>,
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Creates a key and returns it in clear (`siam_<prefix>_<secret>`).
pub fn create(conn: &mut PgConnection, role: &str, supplier: Option<&str>, label: Option<&str>) -> StoreResult<String> {
    let mut rng = rand::thread_rng();
    let prefix: String = (&mut rng).sample_iter(&Alphanumeric).take(8).map(char::from).collect();
    let secret: String = (&mut rng).sample_iter(&Alphanumeric).take(32).map(char::from).collect();
    let key = format!("siam_{prefix}_{secret}");
    diesel::insert_into(api_keys::table)
        .values((api_keys::key_hash.eq(hash_key(&key)), api_keys::prefix.eq(&prefix), api_keys::role.eq(role), api_keys::supplier_id.eq(supplier), api_keys::label.eq(label)))
        .execute(conn)?;
    Ok(key)
}

pub fn lookup(conn: &mut PgConnection, key: &str) -> StoreResult<Option<KeyRecord>> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(hash_key(key)))
        .filter(api_keys::revoked_at.is_null())
        .select((api_keys::prefix, api_keys::role, api_keys::supplier_id))
        .first(conn)
        .optional()?)
}

/// Revokes the key whose prefix is given; `false` if there is no such live key. Its browser
/// sessions end with it (they are checked against the key on every request).
pub fn revoke(conn: &mut PgConnection, prefix: &str) -> StoreResult<bool> {
    let n = diesel::update(api_keys::table.filter(api_keys::prefix.eq(prefix)).filter(api_keys::revoked_at.is_null()))
        .set(api_keys::revoked_at.eq(chrono::Utc::now()))
        .execute(conn)?;
    Ok(n > 0)
}

/// Opens a browser session for a live key; answers the session id (the cookie value) and the
/// key's record, or `None` for an unknown or revoked key.
pub fn open_session(conn: &mut PgConnection, key: &str, lifetime: chrono::Duration) -> StoreResult<Option<(String, KeyRecord)>> {
    let found: Option<(i64, KeyRecord)> = api_keys::table
        .filter(api_keys::key_hash.eq(hash_key(key)))
        .filter(api_keys::revoked_at.is_null())
        .select((api_keys::id, (api_keys::prefix, api_keys::role, api_keys::supplier_id)))
        .first(conn)
        .optional()?;
    let Some((key_id, record)) = found else { return Ok(None) };
    let now = chrono::Utc::now();
    // Sessions long over are of no use to anyone: clear them while here.
    diesel::delete(browser_sessions::table.filter(browser_sessions::expires_at.lt(now - chrono::Duration::days(1)))).execute(conn)?;
    let id: String = rand::thread_rng().sample_iter(&Alphanumeric).take(43).map(char::from).collect();
    diesel::insert_into(browser_sessions::table)
        .values((browser_sessions::id_hash.eq(hash_key(&id)), browser_sessions::key_id.eq(key_id), browser_sessions::expires_at.eq(now + lifetime)))
        .execute(conn)?;
    Ok(Some((id, record)))
}

/// The key behind a live session: not expired, not ended, its key not revoked.
pub fn session(conn: &mut PgConnection, id: &str) -> StoreResult<Option<KeyRecord>> {
    Ok(browser_sessions::table
        .inner_join(api_keys::table)
        .filter(browser_sessions::id_hash.eq(hash_key(id)))
        .filter(browser_sessions::ended_at.is_null())
        .filter(browser_sessions::expires_at.gt(chrono::Utc::now()))
        .filter(api_keys::revoked_at.is_null())
        .select((api_keys::prefix, api_keys::role, api_keys::supplier_id))
        .first(conn)
        .optional()?)
}

/// Ends a session (sign-out); ending an unknown or ended one is harmless.
pub fn end_session(conn: &mut PgConnection, id: &str) -> StoreResult<()> {
    diesel::update(browser_sessions::table.filter(browser_sessions::id_hash.eq(hash_key(id))).filter(browser_sessions::ended_at.is_null()))
        .set(browser_sessions::ended_at.eq(chrono::Utc::now()))
        .execute(conn)?;
    Ok(())
}
