// What an alert says, in words: the figures behind its value (`details`) per condition.
import type { Alert } from "./api/types";
import { formatBytes } from "./format";

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** `instance/database`, or the instance alone for an instance-level alert. */
export function alertTarget(a: Pick<Alert, "instance_name" | "database_name">): string {
  return a.database_name ? `${a.instance_name}/${a.database_name}` : a.instance_name;
}

/** One line on why the alert fired. */
export function describeAlert(a: Pick<Alert, "condition" | "value" | "details">): string {
  const d = a.details ?? {};
  const v = num(a.value);
  switch (a.condition) {
    case "days_until_threshold":
      return `${formatBytes(num(d.size_bytes))} reaches ${formatBytes(num(d.threshold_bytes))} in ${v ?? "?"} day(s)`;
    case "growth": {
      const pct = num(d.growth_percent);
      return `grew ${formatBytes(num(d.growth_bytes))}${pct === null ? "" : ` (${pct}%)`} to ${formatBytes(num(d.size_bytes))}`;
    }
    case "abnormal_day":
      return `grew ${formatBytes(num(d.day_growth_bytes))} in a day; 30-day median ${formatBytes(num(d.median_growth_bytes))}${
        v === null ? "" : `, ${v.toFixed(1)} MADs away`
      }`;
    case "collection_failing":
      return `not collected for ${v ?? "?"} day(s)`;
  }
}
