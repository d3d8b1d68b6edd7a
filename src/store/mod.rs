//! The unified service record in PostgreSQL, through diesel.
//!
//! Repository functions take `&mut PgConnection` and run on blocking threads; callers in async
//! code go through [`Store::run`]. A record change, its events and its outbox rows are written in
//! one transaction (see [`record`]), so a change is never published without being stored, nor
//! stored without being published.

pub mod attachments;
pub mod auth;
pub mod change;
pub mod claims;
pub mod deadletters;
pub mod housekeeping;
pub mod models;
pub mod outbox;
pub mod record;
pub mod schema;
pub mod seed;
pub mod sla;
pub mod suppliers;
pub mod tmf621;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgConn = PooledConnection<ConnectionManager<PgConnection>>;

/// Errors of the record layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("version conflict: the record is at version {current}, the request expected {expected}")]
    VersionConflict { current: i32, expected: i32 },
    #[error("{0}")]
    Conflict(String),
    /// A configured limit is reached (the most files one incident may hold...).
    #[error("{0}")]
    LimitReached(String),
    #[error("idempotency key `{0}` was already used with a different request body")]
    IdempotencyMismatch(String),
    #[error(transparent)]
    Lifecycle(#[from] crate::domain::incident::LifecycleError),
    /// A change may not make the move asked: everything that stands in the way.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Blocked(Vec<crate::domain::change::lifecycle::Blocked>),
    /// The request is coherent JSON but not a coherent change of the record.
    #[error("{0}")]
    Invalid(String),
    #[error("the record holds a value this build cannot read: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database connection: {0}")]
    Pool(String),
}

impl StoreError {
    /// The database cannot be reached, or lost the connection mid-request: the hub's own passing
    /// fault, which goes away once the database answers again (unlike a refused or impossible
    /// request).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Database(e) => connection_lost(e),
            _ => false,
        }
    }
}

fn connection_lost(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match e {
        Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _) | Error::BrokenTransactionManager => true,
        Error::RollbackErrorOnCommit { commit_error, .. } => connection_lost(commit_error),
        _ => false,
    }
}

impl From<crate::domain::incident::UnknownValue> for StoreError {
    fn from(e: crate::domain::incident::UnknownValue) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A connection pool plus the means to run blocking repository code from async code.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    url: String,
}

impl Store {
    /// Connects; fails fast with a message naming the database when it cannot be reached.
    pub fn connect(url: &str, size: u32) -> Result<Store, String> {
        let manager = ConnectionManager::<PgConnection>::new(url);
        let pool = Pool::builder().max_size(size).min_idle(Some(1)).connection_timeout(std::time::Duration::from_secs(5)).build(manager).map_err(|e| format!("{e}"))?;
        Ok(Store { pool, url: url.to_string() })
    }

    /// A connection of its own for claims across hub processes (see [`claims`]).
    pub fn claims(&self) -> claims::Claims {
        claims::Claims::new(&self.url)
    }

    pub fn conn(&self) -> StoreResult<PgConn> {
        self.pool.get().map_err(|e| StoreError::Pool(e.to_string()))
    }

    /// Runs `f` with a pooled connection on a blocking thread.
    pub async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Pool(format!("worker stopped: {e}")))?
    }

    /// Runs `f` inside one transaction.
    pub async fn tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> StoreResult<T> + Send + 'static,
    {
        self.run(move |conn| conn.transaction(f)).await
    }

    /// Runs `f` in one read-only snapshot (REPEATABLE READ): a document read in several
    /// statements never mixes what was there before another transaction committed with what
    /// came after (a leg already open on an incident still shown as new, say).
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> StoreResult<T> + Send + 'static,
    {
        self.run(move |conn| conn.build_transaction().repeatable_read().read_only().run(f)).await
    }

    pub async fn ping(&self) -> bool {
        self.run(|conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await
        .is_ok()
    }
}

/// Creates the database named in `url` if it does not exist, then runs pending migrations.
pub fn prepare_database(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("SIAM_DATABASE_URL `{url}` is not a URL: {e}"))?;
    let name = parsed.path().trim_start_matches('/').to_string();
    if name.is_empty() {
        return Err(format!("SIAM_DATABASE_URL `{}` names no database", redact(url)));
    }
    let mut conn = match PgConnection::establish(url) {
        Ok(c) => c,
        Err(ConnectionError::BadConnection(msg)) if msg.contains("does not exist") => {
            let mut admin_url = parsed.clone();
            admin_url.set_path("/postgres");
            let mut admin = PgConnection::establish(admin_url.as_str()).map_err(|e| unreachable_db(url, &e.to_string()))?;
            let quoted = name.replace('"', "\"\"");
            diesel::sql_query(format!("CREATE DATABASE \"{quoted}\"")).execute(&mut admin).map_err(|e| format!("cannot create database {name}: {e}"))?;
            tracing::info!(database = %name, "created database");
            PgConnection::establish(url).map_err(|e| unreachable_db(url, &e.to_string()))?
        }
        Err(e) => return Err(unreachable_db(url, &e.to_string())),
    };
    migrate(&mut conn)
}

pub fn migrate(conn: &mut PgConnection) -> Result<(), String> {
    // Two hubs starting together must not both run the same migration.
    diesel::sql_query("SELECT pg_advisory_lock(7166190001)").execute(conn).map_err(|e| e.to_string())?;
    let done = conn.run_pending_migrations(MIGRATIONS).map(|v| v.len()).map_err(|e| format!("migrations failed: {e}"));
    let _ = diesel::sql_query("SELECT pg_advisory_unlock(7166190001)").execute(conn);
    let n = done?;
    if n > 0 {
        tracing::info!(applied = n, "ran database migrations");
    }
    Ok(())
}

fn unreachable_db(url: &str, err: &str) -> String {
    format!(
        "PostgreSQL is not reachable at {} ({}); start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set SIAM_DATABASE_URL",
        redact(url),
        err.lines().next().unwrap_or(err).trim()
    )
}

/// A connection URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
