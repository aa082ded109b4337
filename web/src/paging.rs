//! Pages of long tables. A device may hold 10,000 tags and a cell as many: a page that shows
//! every row is tens of megabytes and freezes the browser, so tables show [`PAGE_ROWS`] rows
//! at a time with links to the others.

use std::ops::Range;

/// Rows one page shows: enough to scan by eye, few enough that a page of a 100,000-tag model
/// stays a few hundred kilobytes.
pub(crate) const PAGE_ROWS: usize = 200;

/// Where one page sits in a list of `total` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pager {
    /// 1-based, always within `1..=pages`.
    pub(crate) page: usize,
    /// At least 1, even for an empty list.
    pub(crate) pages: usize,
    pub(crate) total: usize,
}

impl Pager {
    /// Page `requested` of `total` rows. A page past the end shows the last one and anything
    /// that is no page number the first: a link from before the list shrank still shows rows.
    pub(crate) fn new(total: usize, requested: &str) -> Pager {
        let pages = total.div_ceil(PAGE_ROWS).max(1);
        let page = requested
            .trim()
            .parse::<usize>()
            .unwrap_or(1)
            .clamp(1, pages);
        Pager { page, pages, total }
    }

    /// The rows of this page, as indices into the list.
    pub(crate) fn rows(&self) -> Range<usize> {
        let start = (self.page - 1) * PAGE_ROWS;
        start.min(self.total)..(start + PAGE_ROWS).min(self.total)
    }

    /// `rows 201–400 of 10,000`, as the Sparkplug inspector says it.
    pub(crate) fn summary(&self) -> String {
        let rows = self.rows();
        if rows.is_empty() {
            return "no rows".to_owned();
        }
        format!(
            "rows {}–{} of {}",
            thousands(rows.start + 1),
            thousands(rows.end),
            thousands(self.total)
        )
    }

    /// The pages to link: the first, the last, and two either side of this one, in order;
    /// `None` where pages are left out (shown as `…`).
    pub(crate) fn links(&self) -> Vec<Option<usize>> {
        let near = self.page.saturating_sub(2).max(1)..=(self.page + 2).min(self.pages);
        let mut links = Vec::new();
        let mut last = 0;
        for page in [1].into_iter().chain(near).chain([self.pages]) {
            if page <= last {
                continue;
            }
            if page > last + 1 {
                links.push(None);
            }
            links.push(Some(page));
            last = page;
        }
        links
    }
}

/// `10000` as `10,000`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_the_list_and_out_of_range_requests_land_on_a_page() {
        let pager = Pager::new(10_000, "2");
        assert_eq!(pager.rows(), 200..400);
        assert_eq!(pager.pages, 50);
        assert_eq!(pager.summary(), "rows 201–400 of 10,000");
        assert_eq!(Pager::new(10_001, "99").rows(), 10_000..10_001);
        assert_eq!(Pager::new(10, "0").page, 1);
        assert_eq!(Pager::new(10, "x").page, 1);
        let empty = Pager::new(0, "3");
        assert_eq!((empty.page, empty.pages, empty.rows()), (1, 1, 0..0));
        assert_eq!(empty.summary(), "no rows");
    }

    #[test]
    fn links_show_the_ends_and_the_neighbourhood() {
        assert_eq!(Pager::new(100, "1").links(), vec![Some(1)]);
        assert_eq!(
            Pager::new(10_000, "1").links(),
            vec![Some(1), Some(2), Some(3), None, Some(50)]
        );
        assert_eq!(
            Pager::new(10_000, "10").links(),
            vec![
                Some(1),
                None,
                Some(8),
                Some(9),
                Some(10),
                Some(11),
                Some(12),
                None,
                Some(50)
            ]
        );
        assert_eq!(
            Pager::new(1_000, "4").links(),
            vec![Some(1), Some(2), Some(3), Some(4), Some(5)]
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
