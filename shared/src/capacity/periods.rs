//! Aggregation periods: daily, weekly (Monday first), monthly and quarterly, in business dates.

use chrono::{Datelike, Days, Months, NaiveDate};

crate::text_enum! {
    /// The length of an aggregation period.
    pub enum PeriodKind {
        Daily = "daily", Weekly = "weekly", Monthly = "monthly", Quarterly = "quarterly",
    }
}

/// One period of one type: `start..=end` (business dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub kind: PeriodKind,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    /// The period of type `kind` that contains `date` (weeks start on Monday).
    pub fn containing(kind: PeriodKind, date: NaiveDate) -> Period {
        let start = match kind {
            PeriodKind::Weekly => {
                date - Days::new(u64::from(date.weekday().num_days_from_monday()))
            }
            PeriodKind::Monthly => date.with_day(1).unwrap_or(date),
            PeriodKind::Quarterly => {
                let month = (date.month0() / 3) * 3 + 1;
                NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date)
            }
            PeriodKind::Daily => date,
        };
        let end = match kind {
            PeriodKind::Weekly => start + Days::new(6),
            PeriodKind::Monthly => start + Months::new(1) - Days::new(1),
            PeriodKind::Quarterly => start + Months::new(3) - Days::new(1),
            PeriodKind::Daily => start,
        };
        Period { kind, start, end }
    }

    /// The period of the same type just before this one.
    pub fn previous(&self) -> Period {
        Period::containing(self.kind, self.start - Days::new(1))
    }
}

/// What the job computes on business date `today`: yesterday; the last complete and the
/// current week, month and quarter.
pub fn periods_for(today: NaiveDate) -> Vec<Period> {
    let mut out = vec![Period::containing(PeriodKind::Daily, today - Days::new(1))];
    for kind in [
        PeriodKind::Weekly,
        PeriodKind::Monthly,
        PeriodKind::Quarterly,
    ] {
        let current = Period::containing(kind, today);
        out.push(current.previous());
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn periods_contain_the_date_and_chain_backwards() {
        let p = Period::containing(PeriodKind::Weekly, d(2026, 11, 25)); // a Wednesday
        assert_eq!((p.start, p.end), (d(2026, 11, 23), d(2026, 11, 29)));
        let p = Period::containing(PeriodKind::Monthly, d(2026, 2, 14));
        assert_eq!((p.start, p.end), (d(2026, 2, 1), d(2026, 2, 28)));
        let p = Period::containing(PeriodKind::Quarterly, d(2026, 11, 25));
        assert_eq!((p.start, p.end), (d(2026, 10, 1), d(2026, 12, 31)));
        let q1 = Period::containing(PeriodKind::Quarterly, d(2026, 1, 1)).previous();
        assert_eq!((q1.start, q1.end), (d(2025, 10, 1), d(2025, 12, 31)));
        let day = Period::containing(PeriodKind::Daily, d(2026, 3, 1)).previous();
        assert_eq!((day.start, day.end), (d(2026, 2, 28), d(2026, 2, 28)));
    }

    #[test]
    fn the_job_covers_yesterday_and_last_and_current_periods() {
        let ps = periods_for(d(2026, 1, 1));
        let kinds: Vec<(&str, NaiveDate)> = ps.iter().map(|p| (p.kind.as_str(), p.start)).collect();
        assert_eq!(
            kinds,
            vec![
                ("daily", d(2025, 12, 31)),
                ("weekly", d(2025, 12, 22)),
                ("weekly", d(2025, 12, 29)),
                ("monthly", d(2025, 12, 1)),
                ("monthly", d(2026, 1, 1)),
                ("quarterly", d(2025, 10, 1)),
                ("quarterly", d(2026, 1, 1)),
            ]
        );
    }
}
