//! Request planning: the fewest reads that cover every tag of a device.
//!
//! Per unit id and register kind, tags are sorted by address and merged into one read while
//! the gap between them is at most `max_gap` registers (reading a few unused registers is
//! cheaper than another round trip) and the read stays within the protocol limit: 125
//! registers (function codes 3 and 4) or 2000 bits (function codes 1 and 2). A read the PLC
//! refuses with an illegal-address exception is [`split`] until the bad tag stands alone, so
//! only that tag turns bad.

pub use uns_model::modbus::RegisterKind;

/// What one tag needs read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub unit: u8,
    pub kind: RegisterKind,
    /// 0-based address of the first register or bit.
    pub start: u16,
    /// Registers or bits, at least 1 and at most `kind.max_per_read()`.
    pub count: u16,
}

impl Span {
    fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }
}

/// One read request and the tags (indices into the planned spans) it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub unit: u8,
    pub kind: RegisterKind,
    pub start: u16,
    pub count: u16,
    pub tags: Vec<usize>,
}

impl Read {
    fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }
}

/// Plans the reads for `spans`. Spans that are too long for one read (longer than the
/// protocol limit, which validation prevents) still get a read of their own.
pub fn plan(spans: &[Span], max_gap: u16) -> Vec<Read> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| (spans[i].unit, spans[i].kind, spans[i].start, spans[i].count));
    let mut reads: Vec<Read> = Vec::new();
    for i in order {
        let s = spans[i];
        if let Some(last) = reads.last_mut()
            && last.unit == s.unit
            && last.kind == s.kind
            && u32::from(s.start) <= last.end() + u32::from(max_gap)
        {
            let end = last.end().max(s.end());
            if end - u32::from(last.start) <= u32::from(s.kind.max_per_read()) {
                last.count = (end - u32::from(last.start)) as u16;
                last.tags.push(i);
                continue;
            }
        }
        reads.push(Read {
            unit: s.unit,
            kind: s.kind,
            start: s.start,
            count: s.count,
            tags: vec![i],
        });
    }
    reads
}

/// Splits a refused read into two reads of half its tags each (each covering exactly its own
/// tags); `None` when the read serves a single tag, which is then the bad one.
pub fn split(read: &Read, spans: &[Span]) -> Option<(Read, Read)> {
    if read.tags.len() < 2 {
        return None;
    }
    let half = read.tags.len() / 2;
    let part = |tags: &[usize]| {
        let start = tags
            .iter()
            .map(|&t| spans[t].start)
            .min()
            .unwrap_or(read.start);
        let end = tags
            .iter()
            .map(|&t| spans[t].end())
            .max()
            .unwrap_or(read.end());
        Read {
            unit: read.unit,
            kind: read.kind,
            start,
            count: (end - u32::from(start)) as u16,
            tags: tags.to_vec(),
        }
    };
    Some((part(&read.tags[..half]), part(&read.tags[half..])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hr(start: u16, count: u16) -> Span {
        Span {
            unit: 1,
            kind: RegisterKind::HoldingRegister,
            start,
            count,
        }
    }

    #[test]
    fn close_tags_share_a_read_and_far_ones_do_not() {
        let spans = [hr(0, 2), hr(2, 1), hr(10, 2), hr(40, 1)];
        let reads = plan(&spans, 8);
        assert_eq!(reads.len(), 2);
        assert_eq!(
            (reads[0].start, reads[0].count, &reads[0].tags[..]),
            (0, 12, &[0, 1, 2][..])
        );
        assert_eq!((reads[1].start, reads[1].count), (40, 1));
    }

    #[test]
    fn units_and_kinds_never_mix_and_limits_hold() {
        let mut coil = hr(0, 1);
        coil.kind = RegisterKind::Coil;
        let mut other_unit = hr(0, 1);
        other_unit.unit = 2;
        let spans = [hr(0, 1), coil, other_unit, hr(100, 30)];
        let reads = plan(&spans, 200);
        assert_eq!(reads.len(), 4, "{reads:?}"); // 0..130 would exceed 125 registers
    }

    #[test]
    fn a_refused_read_splits_down_to_the_bad_tag() {
        let spans = [hr(0, 1), hr(1, 1), hr(5, 2), hr(9, 1)];
        let read = plan(&spans, 10).remove(0);
        let (a, b) = split(&read, &spans).unwrap();
        assert_eq!((a.start, a.count, &a.tags[..]), (0, 2, &[0, 1][..]));
        assert_eq!((b.start, b.count, &b.tags[..]), (5, 5, &[2, 3][..]));
        let (c, _) = split(&b, &spans).unwrap();
        assert!(split(&c, &spans).is_none());
    }

    fn any_span() -> impl Strategy<Value = Span> {
        (1u8..3, 0usize..4, 0u16..600, 1u16..8).prop_map(|(unit, k, start, count)| Span {
            unit,
            kind: [
                RegisterKind::Coil,
                RegisterKind::DiscreteInput,
                RegisterKind::InputRegister,
                RegisterKind::HoldingRegister,
            ][k],
            start,
            count,
        })
    }

    proptest! {
        #[test]
        fn plans_cover_everything_within_limits_and_are_minimal_under_the_gap_rule(
            spans in proptest::collection::vec(any_span(), 0..80),
            max_gap in 0u16..40,
        ) {
            let reads = plan(&spans, max_gap);
            let mut covered = vec![0; spans.len()];
            for r in &reads {
                prop_assert!(r.count >= 1 && r.count <= r.kind.max_per_read());
                for &t in &r.tags {
                    covered[t] += 1;
                    let s = spans[t];
                    prop_assert_eq!((s.unit, s.kind), (r.unit, r.kind));
                    prop_assert!(s.start >= r.start && s.end() <= r.end());
                }
            }
            prop_assert!(covered.iter().all(|&c| c == 1), "each tag exactly once");
            // No two neighbouring reads of one table could have been one read.
            for pair in reads.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if (a.unit, a.kind) == (b.unit, b.kind) {
                    let gap_ok = u32::from(b.start) <= a.end() + u32::from(max_gap);
                    let merged = a.end().max(b.end()) - u32::from(a.start);
                    prop_assert!(!gap_ok || merged > u32::from(a.kind.max_per_read()), "{a:?} + {b:?}");
                }
            }
        }
    }
}
