//! Capacity trends (functions `aggregate`, `api-capacity`): `periods` says what a day,
//! week, month or quarter is; `aggregate` is the daily job writing the aggregates; `api`
//! lists them; `forecast` ranks what will reach a size threshold first.

pub mod aggregate;
pub mod api;
pub mod forecast;
pub mod periods;

pub use aggregate::{aggregate, aggregate_on};
pub use periods::{periods_for, Period, PeriodKind};
