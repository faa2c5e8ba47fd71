//! Sealing stored personal values again, outside any request: the plaintext rows of
//! a database written before values were sealed (at every start, after the
//! migrations), and rows sealed under a previous key (`ordo rekey`).
//!
//! A pass walks each table once in id order, a batch at a time; each batch commits
//! on its own, so an interrupted pass loses nothing and the next one carries on
//! where it stopped. A row is written only if nobody changed its sealed values since
//! they were read (same key, and for customers, whose contacts a request can change,
//! same version): two passes at once, or a pass and a request, never overwrite each
//! other, and a row whose contacts a request changed is sealed under the current key
//! by that request anyway.

use anyhow::Context;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Int4, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::sealing::{FieldCipher, KeyId, Sealed, SealedField};
use uuid::Uuid;

use crate::clients::{SealedClientEmail, StoredClientEmail};
use crate::customers::{SealedContacts, StoredContacts};
use crate::errors::Doing;
use crate::pool::{PgPool, checkout};
use crate::schema::{api_clients, customers};

/// Rows read and written per batch: large enough that a pass over a million rows
/// is a few thousand round trips, small enough that a batch holds its row locks for
/// milliseconds.
const BATCH: i64 = 500;

/// Which rows a pass seals under the current key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Rows still in plaintext (written before values were sealed).
    Plaintext,
    /// Every row not sealed under the current key: plaintext, or sealed under a
    /// previous key.
    Rekey,
}

/// What a pass did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingReport {
    /// The table.
    pub table: &'static str,
    /// Rows the pass sealed under the current key.
    pub sealed: u64,
    /// Rows left alone because someone else changed them between read and write
    /// (they are then sealed under the current key by whoever changed them).
    pub changed_meanwhile: u64,
    /// After the pass, how many rows are under each key (`None`: plaintext).
    pub rows_by_key: Vec<(Option<String>, u64)>,
}

/// The plaintext of `bytes`, sealed under the key `key_id` for `field` of `record`.
///
/// # Errors
/// When `key_id` is not a key id, or the value does not open (see
/// [`FieldCipher::open`]).
pub(crate) fn open_sealed(
    cipher: &dyn FieldCipher,
    field: SealedField,
    record: Uuid,
    key_id: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<String> {
    let key_id = KeyId::parse(key_id)?;
    Ok(cipher.open(field, record, &Sealed { key_id, bytes })?)
}

/// Seals under the current key the rows `pass` selects, in every table with sealed
/// values.
///
/// # Errors
/// When the database fails, or a row is sealed under a key `cipher` does not know
/// (configure it as a previous key). Batches sealed before the failure stay sealed.
#[tracing::instrument(skip_all, fields(?pass, key_id = %cipher.current_key()))]
pub async fn seal_rows(
    pool: &PgPool,
    cipher: &dyn FieldCipher,
    pass: Pass,
) -> anyhow::Result<Vec<SealingReport>> {
    Ok(vec![
        seal_table::<Customers>(pool, cipher, pass).await?,
        seal_table::<ApiClients>(pool, cipher, pass).await?,
    ])
}

/// The next batch of `$table` rows `$pass` selects, in id order after `$after`, as
/// `$row`s. A macro because the query is the same for every table with sealed
/// values (their columns share names) but diesel types each table apart.
macro_rules! pending_rows {
    ($conn:expr, $table:ident, $row:ty, $pass:expr, $current:expr, $after:expr) => {{
        let mut query = $table::table
            .select(<$row>::as_select())
            .order($table::id)
            .limit(BATCH)
            .into_boxed();
        query = match $pass {
            Pass::Plaintext => query.filter($table::data_key_id.is_null()),
            Pass::Rekey => query.filter(
                $table::data_key_id
                    .is_null()
                    .or($table::data_key_id.ne($current.as_str())),
            ),
        };
        if let Some(after) = $after {
            query = query.filter($table::id.gt(after));
        }
        query
            .load::<$row>($conn)
            .await
            .doing(concat!("reading ", stringify!($table), " to seal"))
    }};
}

/// A table with sealed values: every row's values are sealed under the key in its
/// `data_key_id` column, `NULL` while they are plaintext.
#[async_trait]
trait SealedTable {
    /// Its name.
    const NAME: &'static str;
    /// A row as a pass reads it.
    type Pending: Send;

    /// The id of `row`.
    fn id(row: &Self::Pending) -> Uuid;

    /// The next batch of rows `pass` selects, in id order, after `after`.
    async fn pending(
        conn: &mut AsyncPgConnection,
        pass: Pass,
        current: &KeyId,
        after: Option<Uuid>,
    ) -> anyhow::Result<Vec<Self::Pending>>;

    /// Seals `rows` under the current key and writes those nobody changed since
    /// they were read; how many were written.
    async fn write_sealed(
        conn: &mut AsyncPgConnection,
        cipher: &dyn FieldCipher,
        rows: Vec<Self::Pending>,
    ) -> anyhow::Result<u64>;
}

async fn seal_table<T: SealedTable>(
    pool: &PgPool,
    cipher: &dyn FieldCipher,
    pass: Pass,
) -> anyhow::Result<SealingReport> {
    let current = cipher.current_key();
    let mut conn = checkout(pool).await?;
    let mut report = SealingReport {
        table: T::NAME,
        sealed: 0,
        changed_meanwhile: 0,
        rows_by_key: Vec::new(),
    };
    let mut after: Option<Uuid> = None;
    loop {
        let rows = T::pending(&mut conn, pass, &current, after).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(T::id(last));
        let read = rows.len() as u64;
        let written = T::write_sealed(&mut conn, cipher, rows).await?;
        report.sealed += written;
        report.changed_meanwhile += read - written;
        tracing::debug!(table = T::NAME, sealed = report.sealed, "sealed a batch");
    }
    report.rows_by_key = rows_by_key(&mut conn, T::NAME).await?;
    Ok(report)
}

#[derive(QueryableByName)]
struct RowsUnderKey {
    #[diesel(sql_type = Nullable<Text>)]
    data_key_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    rows: i64,
}

async fn rows_by_key(
    conn: &mut AsyncPgConnection,
    table: &'static str,
) -> anyhow::Result<Vec<(Option<String>, u64)>> {
    // `table` is one of this module's constant names, never input.
    let counted = diesel::sql_query(format!(
        "SELECT data_key_id, count(*) AS rows FROM {table} \
         GROUP BY data_key_id ORDER BY data_key_id NULLS FIRST"
    ))
    .load::<RowsUnderKey>(conn)
    .await
    .with_context(|| format!("counting {table} rows by key"))?;
    Ok(counted
        .into_iter()
        .map(|r| (r.data_key_id, r.rows.unsigned_abs()))
        .collect())
}

/// The message of a row that cannot be opened during a pass.
fn unreadable(table: &str, id: Uuid) -> String {
    format!(
        "{table} row {id} cannot be read; if its key is an old one, configure it in ORDO_DATA_KEY_PREVIOUS"
    )
}

struct Customers;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = customers, check_for_backend(diesel::pg::Pg))]
struct PendingCustomer {
    id: Uuid,
    version: i32,
    #[diesel(embed)]
    contacts: StoredContacts,
}

/// Writes a batch of sealed contacts where each row is still at the version and key
/// it was read at. One statement for the batch: `unnest` zips the arrays into rows.
const WRITE_SEALED_CUSTOMERS: &str = "\
UPDATE customers AS c
   SET email_sealed = u.email_sealed,
       email_index  = u.email_index,
       phone_sealed = u.phone_sealed,
       data_key_id  = u.data_key_id,
       email = NULL, email_key = NULL, phone = NULL
  FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[])
       AS u(id, version, read_key_id, email_sealed, email_index, phone_sealed, data_key_id)
 WHERE c.id = u.id
   AND c.version = u.version
   AND c.data_key_id IS NOT DISTINCT FROM u.read_key_id";

#[async_trait]
impl SealedTable for Customers {
    const NAME: &'static str = "customers";
    type Pending = PendingCustomer;

    fn id(row: &PendingCustomer) -> Uuid {
        row.id
    }

    async fn pending(
        conn: &mut AsyncPgConnection,
        pass: Pass,
        current: &KeyId,
        after: Option<Uuid>,
    ) -> anyhow::Result<Vec<PendingCustomer>> {
        pending_rows!(conn, customers, PendingCustomer, pass, current, after)
    }

    async fn write_sealed(
        conn: &mut AsyncPgConnection,
        cipher: &dyn FieldCipher,
        rows: Vec<PendingCustomer>,
    ) -> anyhow::Result<u64> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut versions = Vec::with_capacity(rows.len());
        let mut read_keys = Vec::with_capacity(rows.len());
        let mut sealed = Vec::with_capacity(rows.len());
        for row in rows {
            let read_key = row.contacts.key_id().map(str::to_owned);
            let (email, phone) = row
                .contacts
                .open(row.id, cipher)
                .with_context(|| unreadable(Self::NAME, row.id))?;
            sealed.push(SealedContacts::seal(
                cipher,
                row.id,
                &email,
                phone.as_ref(),
            )?);
            ids.push(row.id);
            versions.push(row.version);
            read_keys.push(read_key);
        }
        let mut email_sealed = Vec::with_capacity(sealed.len());
        let mut email_index = Vec::with_capacity(sealed.len());
        let mut phone_sealed = Vec::with_capacity(sealed.len());
        let mut data_key_id = Vec::with_capacity(sealed.len());
        for contacts in sealed {
            email_sealed.push(contacts.email_sealed);
            email_index.push(contacts.email_index);
            phone_sealed.push(contacts.phone_sealed);
            data_key_id.push(contacts.data_key_id);
        }
        let written = diesel::sql_query(WRITE_SEALED_CUSTOMERS)
            .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
            .bind::<Array<Int4>, _>(versions)
            .bind::<Array<Nullable<Text>>, _>(read_keys)
            .bind::<Array<Nullable<Bytea>>, _>(email_sealed)
            .bind::<Array<Nullable<Bytea>>, _>(email_index)
            .bind::<Array<Nullable<Bytea>>, _>(phone_sealed)
            .bind::<Array<Nullable<Text>>, _>(data_key_id)
            .execute(conn)
            .await
            .doing("writing sealed customers")?;
        Ok(written as u64)
    }
}

struct ApiClients;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = api_clients, check_for_backend(diesel::pg::Pg))]
struct PendingClient {
    id: Uuid,
    #[diesel(embed)]
    email: StoredClientEmail,
}

/// Writes a batch of sealed addresses where each row is still under the key it was
/// read under. A client's address never changes once registered, so an unchanged
/// key means an unchanged address, whatever else a request changed meanwhile; the
/// version is neither compared nor raised (sealing is not a change of the client).
const WRITE_SEALED_CLIENTS: &str = "\
UPDATE api_clients AS c
   SET email_sealed = u.email_sealed,
       data_key_id  = u.data_key_id,
       email_plaintext = NULL
  FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[])
       AS u(id, read_key_id, email_sealed, data_key_id)
 WHERE c.id = u.id
   AND c.data_key_id IS NOT DISTINCT FROM u.read_key_id";

#[async_trait]
impl SealedTable for ApiClients {
    const NAME: &'static str = "api_clients";
    type Pending = PendingClient;

    fn id(row: &PendingClient) -> Uuid {
        row.id
    }

    async fn pending(
        conn: &mut AsyncPgConnection,
        pass: Pass,
        current: &KeyId,
        after: Option<Uuid>,
    ) -> anyhow::Result<Vec<PendingClient>> {
        pending_rows!(conn, api_clients, PendingClient, pass, current, after)
    }

    async fn write_sealed(
        conn: &mut AsyncPgConnection,
        cipher: &dyn FieldCipher,
        rows: Vec<PendingClient>,
    ) -> anyhow::Result<u64> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut read_keys = Vec::with_capacity(rows.len());
        let mut email_sealed = Vec::with_capacity(rows.len());
        let mut data_key_id = Vec::with_capacity(rows.len());
        for row in rows {
            read_keys.push(row.email.key_id().map(str::to_owned));
            let email = row
                .email
                .open(row.id, cipher)
                .with_context(|| unreadable(Self::NAME, row.id))?;
            let sealed = SealedClientEmail::seal(cipher, row.id, &email)?;
            ids.push(row.id);
            email_sealed.push(sealed.email_sealed);
            data_key_id.push(sealed.data_key_id);
        }
        let written = diesel::sql_query(WRITE_SEALED_CLIENTS)
            .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
            .bind::<Array<Nullable<Text>>, _>(read_keys)
            .bind::<Array<Nullable<Bytea>>, _>(email_sealed)
            .bind::<Array<Nullable<Text>>, _>(data_key_id)
            .execute(conn)
            .await
            .doing("writing sealed API clients")?;
        Ok(written as u64)
    }
}
