//! Statements whose SQL text is rendered once per process.
//!
//! diesel caches a query's *prepared statement* by its type, but diesel-async
//! renders the query's SQL text anew on every execution to look it up: for a
//! sixteen-column select that is about fifteen thousand instructions, more than
//! the rest of the repository call on the hottest reads. A [`Prebuilt`] query
//! renders its diesel DSL once, keeps the text between the bind placeholders, and
//! on every execution pushes those pieces and its binds, so the text diesel sends
//! is exactly the DSL's while the work per call is a few copies.

use std::marker::PhantomData;
use std::sync::LazyLock;

use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{AstPass, Query, QueryBuilder, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;

/// The SQL text of a query split at its bind placeholders `$1 … $n`: `n + 1`
/// pieces.
#[derive(Debug)]
pub(crate) struct SqlTemplate {
    pub(crate) pieces: Vec<String>,
}

impl SqlTemplate {
    /// Renders `query` (its binds' values do not matter) and splits it at its
    /// placeholders.
    ///
    /// # Panics
    /// When the query cannot be rendered or its placeholders are not `$1 … $n` in
    /// order: a programming error in a static query, found by any test running it.
    pub(crate) fn of(query: &impl QueryFragment<Pg>) -> Self {
        let mut builder = PgQueryBuilder::default();
        query
            .to_sql(&mut builder, &Pg)
            .expect("a static query renders");
        Self::split(&builder.finish())
    }

    /// The text with its placeholders `$1 … $n` back in place: what is sent.
    pub(crate) fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut text = self.pieces[0].clone();
        for (n, piece) in self.pieces[1..].iter().enumerate() {
            // Writing to a String cannot fail.
            let _ = write!(text, "${}{piece}", n + 1);
        }
        text
    }

    fn split(sql: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = sql;
        for n in 1.. {
            let placeholder = format!("${n}");
            let Some(at) = rest.find(&placeholder) else {
                break;
            };
            // `$1` must not be read inside `$10`.
            let after = &rest[at + placeholder.len()..];
            assert!(
                !after.starts_with(|c: char| c.is_ascii_digit()),
                "placeholders of a prebuilt statement are in order: {sql}"
            );
            pieces.push(rest[..at].to_owned());
            rest = after;
        }
        pieces.push(rest.to_owned());
        assert!(
            pieces.iter().all(|piece| !piece.contains('$')),
            "placeholders of a prebuilt statement are in order: {sql}"
        );
        Self { pieces }
    }
}

/// One statement run through [`Prebuilt`]: its row type and its rendered text.
pub(crate) trait Statement: Send + Sync + 'static {
    /// The SQL type of its rows, e.g. `diesel::dsl::AsSelect<OrderRow, Pg>`.
    type SqlType;
    /// Its binds, in placeholder order.
    type Binds: Binds;
    /// The rendered text, kept in a `static` [`LazyLock`].
    fn template() -> &'static LazyLock<SqlTemplate>;
}

/// Values bound to a statement's placeholders, in order.
pub(crate) trait Binds: Send + 'static {
    /// How many there are.
    const COUNT: usize;

    /// Pushes the bind of placeholder `$index + 1`.
    ///
    /// # Errors
    /// When the value cannot be serialised.
    fn push<'b>(&'b self, index: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

/// One bind of SQL type `T`.
pub(crate) struct Bind<T, V>(V, PhantomData<fn() -> T>);

impl<T, V> Bind<T, V> {
    /// `value`, bound as SQL type `T`.
    pub(crate) fn new(value: V) -> Self {
        Self(value, PhantomData)
    }
}

impl<T, V> Binds for Bind<T, V>
where
    T: diesel::sql_types::SqlType + 'static,
    Pg: HasSqlType<T>,
    V: ToSql<T, Pg> + Send + 'static,
{
    const COUNT: usize = 1;

    fn push<'b>(&'b self, _index: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<T, V>(&self.0)
    }
}

impl<A: Binds, B: Binds> Binds for (A, B) {
    const COUNT: usize = A::COUNT + B::COUNT;

    fn push<'b>(&'b self, index: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if index < A::COUNT {
            self.0.push(index, out)
        } else {
            self.1.push(index - A::COUNT, out)
        }
    }
}

/// A [`Statement`] with its binds, runnable with diesel-async's `RunQueryDsl`.
pub(crate) struct Prebuilt<S: Statement> {
    binds: S::Binds,
}

impl<S: Statement> Prebuilt<S> {
    /// The statement `S` with `binds`.
    pub(crate) fn new(binds: S::Binds) -> Self {
        Self { binds }
    }
}

impl<S: Statement> QueryFragment<Pg> for Prebuilt<S> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let pieces = &S::template().pieces;
        debug_assert_eq!(
            pieces.len(),
            S::Binds::COUNT + 1,
            "binds match placeholders"
        );
        for (index, piece) in pieces[..S::Binds::COUNT].iter().enumerate() {
            out.push_sql(piece);
            self.binds.push(index, &mut out)?;
        }
        out.push_sql(&pieces[S::Binds::COUNT]);
        Ok(())
    }
}

impl<S: Statement> QueryId for Prebuilt<S> {
    // One type per statement: diesel's prepared-statement cache keys on it.
    type QueryId = Prebuilt<S>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S: Statement> Query for Prebuilt<S> {
    type SqlType = S::SqlType;
}

/// SQL text written by hand whose placeholders may repeat or come out of order
/// (`$1 … $3, $16, $4 … $8, $8`): split at every placeholder, with the bind each
/// one stands for. Rendered, the placeholders are numbered in order of
/// appearance, a repeated one bound again.
#[derive(Debug)]
pub(crate) struct RawTemplate {
    pieces: Vec<&'static str>,
    /// For each placeholder, in order of appearance, the index of its bind.
    binds: Vec<usize>,
}

impl RawTemplate {
    /// Reads the placeholders of `sql`.
    ///
    /// # Panics
    /// When a placeholder is `$0`: a programming error in a static statement.
    pub(crate) fn parse(sql: &'static str) -> Self {
        let mut pieces = Vec::new();
        let mut binds = Vec::new();
        let mut piece_start = 0;
        let bytes = sql.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let digits = bytes[at + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if bytes[at] == b'$' && digits > 0 {
                let number: usize = sql[at + 1..at + 1 + digits]
                    .parse()
                    .expect("a placeholder's digits are a number");
                assert!(number > 0, "placeholders start at $1: {sql}");
                pieces.push(&sql[piece_start..at]);
                binds.push(number - 1);
                at += 1 + digits;
                piece_start = at;
            } else {
                at += 1;
            }
        }
        pieces.push(&sql[piece_start..]);
        Self { pieces, binds }
    }

    /// How many distinct binds the text names (its highest placeholder).
    pub(crate) fn bind_count(&self) -> usize {
        self.binds.iter().max().map_or(0, |last| last + 1)
    }
}

/// One hand-written statement run through [`PrebuiltRaw`]: its text and binds.
/// Its rows are read by name (`QueryableByName`), as with `sql_query`.
pub(crate) trait RawStatement: Send + Sync + 'static {
    /// Its binds, in placeholder-number order.
    type Binds: Binds;
    /// The parsed text, kept in a `static` [`LazyLock`].
    fn template() -> &'static LazyLock<RawTemplate>;
}

/// A [`RawStatement`] with its binds: unlike `sql_query`, whose statements diesel
/// never caches (each execution prepares anew, a round trip of its own), it is
/// prepared once per connection.
pub(crate) struct PrebuiltRaw<S: RawStatement> {
    binds: S::Binds,
}

impl<S: RawStatement> PrebuiltRaw<S> {
    /// The statement `S` with `binds`.
    pub(crate) fn new(binds: S::Binds) -> Self {
        Self { binds }
    }
}

impl<S: RawStatement> QueryFragment<Pg> for PrebuiltRaw<S> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let template = S::template();
        for (piece, bind) in template.pieces.iter().zip(&template.binds) {
            out.push_sql(piece);
            self.binds.push(*bind, &mut out)?;
        }
        if let Some(last) = template.pieces.last() {
            out.push_sql(last);
        }
        Ok(())
    }
}

impl<S: RawStatement> QueryId for PrebuiltRaw<S> {
    type QueryId = PrebuiltRaw<S>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S: RawStatement> Query for PrebuiltRaw<S> {
    type SqlType = diesel::sql_types::Untyped;
}

/// Declares a [`RawStatement`]: `name, binds = SQL text`.
macro_rules! raw_statement {
    ($(#[$doc:meta])* $name:ident, $binds:ty = $sql:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl $crate::prebuilt::RawStatement for $name {
            type Binds = $binds;

            fn template() -> &'static std::sync::LazyLock<$crate::prebuilt::RawTemplate> {
                static TEMPLATE: std::sync::LazyLock<$crate::prebuilt::RawTemplate> =
                    std::sync::LazyLock::new(|| {
                        let template = $crate::prebuilt::RawTemplate::parse($sql);
                        assert_eq!(
                            template.bind_count(),
                            <$binds as $crate::prebuilt::Binds>::COUNT,
                            "the binds of {} match its placeholders",
                            stringify!($name)
                        );
                        template
                    });
                &TEMPLATE
            }
        }
    };
}
pub(crate) use raw_statement;

/// Declares a [`Statement`]: `name: row SQL type, binds = diesel DSL query`.
macro_rules! statement {
    ($(#[$doc:meta])* $name:ident: $sql_type:ty, $binds:ty = $query:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl $crate::prebuilt::Statement for $name {
            type SqlType = $sql_type;
            type Binds = $binds;

            fn template() -> &'static std::sync::LazyLock<$crate::prebuilt::SqlTemplate> {
                static TEMPLATE: std::sync::LazyLock<$crate::prebuilt::SqlTemplate> =
                    std::sync::LazyLock::new(|| {
                        let template = $crate::prebuilt::SqlTemplate::of(&$query);
                        assert_eq!(
                            template.pieces.len(),
                            <$binds as $crate::prebuilt::Binds>::COUNT + 1,
                            "the binds of {} match its placeholders",
                            stringify!($name)
                        );
                        template
                    });
                &TEMPLATE
            }
        }
    };
}
pub(crate) use statement;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_splits_at_each_placeholder_in_order() {
        let template = SqlTemplate::split("SELECT a FROM t WHERE b = $1 AND c < $2 LIMIT $3");
        assert_eq!(
            template.pieces,
            ["SELECT a FROM t WHERE b = ", " AND c < ", " LIMIT ", ""]
        );
    }

    #[test]
    fn a_template_gives_back_the_text_it_was_split_from() {
        let sql = "SELECT a FROM t WHERE b = $1 AND c < $2 LIMIT $3";
        assert_eq!(SqlTemplate::split(sql).text(), sql);
    }

    #[test]
    fn ten_placeholders_are_not_read_as_one() {
        let sql = (1..=10)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(",");
        let template = SqlTemplate::split(&sql);
        assert_eq!(template.pieces.len(), 11);
        assert!(template.pieces[1..10].iter().all(|piece| piece == ","));
    }

    #[test]
    fn a_raw_template_binds_repeated_and_unordered_placeholders() {
        let template = RawTemplate::parse("SELECT $2, $1::date, $1, $10 FROM t WHERE a = '$'");
        assert_eq!(
            template.pieces,
            ["SELECT ", ", ", "::date, ", ", ", " FROM t WHERE a = '$'"]
        );
        assert_eq!(template.binds, [1, 0, 0, 9]);
        assert_eq!(template.bind_count(), 10);
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn placeholders_out_of_order_are_refused() {
        SqlTemplate::split("SELECT $2, $1");
    }
}
