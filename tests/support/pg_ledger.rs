//! The ledger client for PostgreSQL: rows committed over tokio-postgres,
//! directly or through whatever the URL names (a proxy, PgBouncer).

use super::ledger::{Ledger, LedgerWriter};

pub struct PgLedger {
    pub url: String,
}

impl LedgerWriter for PgLedger {
    type Session = tokio_postgres::Client;

    async fn connect(&self) -> Option<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(conn);
        Some(client)
    }

    async fn insert(&self, client: &mut tokio_postgres::Client, id: i64) -> bool {
        client
            .execute("INSERT INTO ledger(id) VALUES ($1)", &[&id])
            .await
            .is_ok()
    }
}

/// A ledger client committing to `url`.
pub fn pg_ledger(url: String) -> Ledger {
    Ledger::start(PgLedger { url })
}
