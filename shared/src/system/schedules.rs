//! The daily schedules (EventBridge Scheduler in AWS, the in-process scheduler locally).

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Collect,
    Aggregate,
    Maintenance,
}

impl Job {
    pub fn key(self) -> &'static str {
        match self {
            Job::Collect => "collect_databases",
            Job::Aggregate => "aggregate_capacity",
            Job::Maintenance => "maintenance",
        }
    }
    pub fn function(self) -> &'static str {
        match self {
            Job::Collect => "collect-dispatch",
            Job::Aggregate => "aggregate",
            Job::Maintenance => "maintenance",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub job: Job,
    /// Local time of day in the business time zone.
    pub at: NaiveTime,
    pub timezone: Tz,
}

impl Schedule {
    /// EventBridge Scheduler form, e.g. `cron(0 3 * * ? *)`.
    pub fn cron(&self) -> String {
        use chrono::Timelike;
        format!("cron({} {} * * ? *)", self.at.minute(), self.at.hour())
    }

    /// The first run strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let local_today = now.with_timezone(&self.timezone).date_naive();
        for day in 0..3 {
            let date = local_today + Duration::days(day);
            // A time that does not exist (DST gap) runs at the first instant after it.
            let candidate = self
                .timezone
                .from_local_datetime(&date.and_time(self.at))
                .earliest()
                .or_else(|| {
                    self.timezone
                        .from_local_datetime(&(date.and_time(self.at) + Duration::hours(1)))
                        .earliest()
                });
            if let Some(c) = candidate {
                let c = c.with_timezone(&Utc);
                if c > now {
                    return c;
                }
            }
        }
        now + Duration::days(1)
    }
}

pub fn schedules(config: &Config) -> Vec<Schedule> {
    vec![
        Schedule {
            job: Job::Collect,
            at: config.collect_at,
            timezone: config.timezone,
        },
        Schedule {
            job: Job::Aggregate,
            at: config.aggregate_at,
            timezone: config.timezone,
        },
        Schedule {
            job: Job::Maintenance,
            at: config.maintenance_at,
            timezone: config.timezone,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_in_business_time_zone() {
        let s = Schedule {
            job: Job::Collect,
            at: NaiveTime::from_hms_opt(3, 0, 0).unwrap(),
            timezone: "Asia/Shanghai".parse().unwrap(),
        };
        // 2026-11-25 18:00 UTC = 26th 02:00 in Shanghai -> 26th 03:00 Shanghai = 19:00 UTC.
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 18, 0, 0).unwrap();
        assert_eq!(
            s.next_after(now),
            Utc.with_ymd_and_hms(2026, 11, 25, 19, 0, 0).unwrap()
        );
        let after = Utc.with_ymd_and_hms(2026, 11, 25, 19, 0, 0).unwrap();
        assert_eq!(
            s.next_after(after),
            Utc.with_ymd_and_hms(2026, 11, 26, 19, 0, 0).unwrap()
        );
        assert_eq!(s.cron(), "cron(0 3 * * ? *)");
    }
}
