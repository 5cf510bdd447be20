//! A timeline history file: which timeline branched off at which LSN.
//! Each line is `<parent tli>\t<switch LSN>\t<reason>`.

use instarec_postgres::lsn::{Lsn, TimelineId};

/// (parent timeline, where the next timeline branched off it), in order.
pub fn parse(content: &[u8]) -> Vec<(TimelineId, Lsn)> {
    String::from_utf8_lossy(content)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let tli = fields.next()?.parse::<u32>().ok()?;
            let lsn = fields.next()?.parse::<Lsn>().ok()?;
            Some((TimelineId(tli), lsn))
        })
        .collect()
}

/// Where `parent` ended according to `history`, and the timeline after it.
pub fn switch_after(
    history: &[(TimelineId, Lsn)],
    parent: TimelineId,
) -> Option<(TimelineId, Lsn)> {
    let i = history.iter().position(|(t, _)| *t == parent)?;
    let next = history
        .get(i + 1)
        .map(|(t, _)| *t)
        .unwrap_or(TimelineId(parent.0 + 1));
    Some((next, history[i].1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_history_lines() {
        let h = parse(
            b"1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tbefore 2026-11-27\n",
        );
        assert_eq!(
            h,
            vec![
                (TimelineId(1), Lsn(0x3000158)),
                (TimelineId(2), Lsn(0x5000000))
            ]
        );
        assert_eq!(
            switch_after(&h, TimelineId(1)),
            Some((TimelineId(2), Lsn(0x3000158)))
        );
        assert_eq!(
            switch_after(&h, TimelineId(2)),
            Some((TimelineId(3), Lsn(0x5000000)))
        );
        assert_eq!(switch_after(&h, TimelineId(7)), None);
    }
}
