//! Keyset pagination shared by every list.

use uuid::Uuid;

use crate::value::InvalidValue;

/// How many items one page holds: 1 to 200, 50 unless asked otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u16);

impl PageLimit {
    /// The largest page.
    pub const MAX: u16 = 200;

    /// Parses a requested page size.
    ///
    /// # Errors
    /// When `raw` lies outside 1..=200.
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        match u16::try_from(raw) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(InvalidValue::new("limit must be between 1 and 200")),
        }
    }

    /// The page size.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(50)
    }
}

/// Which page to read: items come newest first, and `after` is the id of the last
/// item of the previous page (ids are time-ordered UUID v7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// The page size.
    pub limit: PageLimit,
    /// Continue after this id; `None` for the first page.
    pub after: Option<Uuid>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_after: Option<Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows read in order: the extra row only
    /// tells that another page exists. `id_of` gives an item's keyset id.
    pub fn from_overfetched(
        mut rows: Vec<T>,
        limit: PageLimit,
        id_of: impl Fn(&T) -> Uuid,
    ) -> Self {
        let limit = usize::from(limit.get());
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if has_more {
            rows.last().map(&id_of)
        } else {
            None
        };
        Self {
            items: rows,
            next_after,
        }
    }

    /// Transforms every item, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_after: self.next_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_one_to_two_hundred_are_refused() {
        assert!(PageLimit::parse(0).is_err());
        assert!(PageLimit::parse(201).is_err());
        assert!(PageLimit::parse(-1).is_err());
        assert_eq!(PageLimit::parse(200).map(PageLimit::get), Ok(200));
    }

    #[test]
    fn an_overfetched_row_yields_a_cursor_to_the_last_kept_item() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let limit = PageLimit::parse(2).expect("valid limit");
        let page = Page::from_overfetched(ids.clone(), limit, |id| *id);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(page.next_after, Some(ids[1]));

        let last = Page::from_overfetched(ids[..2].to_vec(), limit, |id| *id);
        assert_eq!(last.next_after, None);
    }
}
