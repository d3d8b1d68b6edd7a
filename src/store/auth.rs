//! API keys, stored as SHA-256 hashes: the key itself is shown once, when it is created.

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
