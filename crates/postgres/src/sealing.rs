//! Sealing stored personal values again, outside any request: the plaintext rows of
//! a database written before values were sealed (at every start, after the
//! migrations), and rows sealed under a previous key (`ordo rekey`).
//!
//! A pass walks the table once in id order, a batch at a time; each batch commits on
//! its own, so an interrupted pass loses nothing and the next one carries on where
//! it stopped. A row is written only if nobody changed it since it was read (same
//! version, same key): two passes at once, or a pass and a request, never overwrite
//! each other, and a row changed by a request is sealed under the current key by
//! that request anyway.

use anyhow::Context;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea, Int4, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::sealing::FieldCipher;
use uuid::Uuid;

use crate::customers::{SealedContacts, StoredContacts};
use crate::errors::Doing;
use crate::pool::{PgPool, checkout};
use crate::schema::customers;

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
    Ok(vec![seal_customers(pool, cipher, pass).await?])
}

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

async fn seal_customers(
    pool: &PgPool,
    cipher: &dyn FieldCipher,
    pass: Pass,
) -> anyhow::Result<SealingReport> {
    let current = cipher.current_key();
    let mut conn = checkout(pool).await?;
    let mut report = SealingReport {
        table: "customers",
        sealed: 0,
        changed_meanwhile: 0,
        rows_by_key: Vec::new(),
    };
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = customers::table
            .select(PendingCustomer::as_select())
            .order(customers::id)
            .limit(BATCH)
            .into_boxed();
        query = match pass {
            Pass::Plaintext => query.filter(customers::data_key_id.is_null()),
            Pass::Rekey => query.filter(
                customers::data_key_id
                    .is_null()
                    .or(customers::data_key_id.ne(current.as_str())),
            ),
        };
        if let Some(after) = after {
            query = query.filter(customers::id.gt(after));
        }
        let rows = query
            .load(&mut conn)
            .await
            .doing("reading customers to seal")?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(last.id);
        let read = rows.len() as u64;
        let written = write_sealed_customers(&mut conn, cipher, rows).await?;
        report.sealed += written;
        report.changed_meanwhile += read - written;
        tracing::debug!(sealed = report.sealed, "sealed a batch of customers");
    }
    report.rows_by_key = customers::table
        .group_by(customers::data_key_id)
        .select((customers::data_key_id, diesel::dsl::count_star()))
        .order(customers::data_key_id.asc().nulls_first())
        .load::<(Option<String>, i64)>(&mut conn)
        .await
        .doing("counting customers by key")?
        .into_iter()
        .map(|(key, rows)| (key, rows.unsigned_abs()))
        .collect();
    Ok(report)
}

async fn write_sealed_customers(
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
        let (email, phone) = row.contacts.open(row.id, cipher).with_context(|| {
            format!(
                "customer {} cannot be read; if its key is an old one, configure it in ORDO_DATA_KEY_PREVIOUS",
                row.id
            )
        })?;
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
