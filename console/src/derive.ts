// Data shaping for pages (pure, unit tested).
import type { QueryOf } from "./api/client";
import type { Aggregation, SizePoint } from "./api/types";
import type { Series } from "./chart-types";
import { dateToX } from "./series";
import type { Params } from "./state";

type LedgerQuery = QueryOf<"/databases/ledger">;
const COLORS = ["#0b5d7a", "#e67e22", "#8e44ad", "#27ae60", "#c0392b", "#2c3e50", "#d35400", "#16a085"];

/** The filters a ledger export accepts (the server refuses any other with 400 "unknown filter"). */
const EXPORT_FILTERS: (keyof LedgerQuery)[] = ["search", "db_type", "instance_id", "tag", "tag_mode", "min_size_bytes", "stale"];

/** The export's filters: the ledger's row filters only; never its paging, sort or threshold (a display option). */
export function exportFilters(p: Params): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of EXPORT_FILTERS) if (p[k] !== undefined && p[k] !== "") out[k] = p[k];
  return out;
}

/** Day-over-day changes, newest first, only days where the size moved. */
export function recentChanges(items: SizePoint[], n = 10): { date: string; change: number; size: number }[] {
  const out = [];
  for (let i = items.length - 1; i > 0 && out.length < n; i--) {
    const change = items[i].size_bytes - items[i - 1].size_bytes;
    if (change !== 0) out.push({ date: items[i].collected_date, change, size: items[i].size_bytes });
  }
  return out;
}

/** One line per name over the union of period starts (null where a name has no row). */
export function pivot(rows: Aggregation[], nameOf: (r: Aggregation) => string, top = 8): { xs: number[]; series: Series[] } {
  const starts = [...new Set(rows.map((r) => r.period_start))].sort();
  const latest = new Map<string, number>();
  for (const r of rows) latest.set(nameOf(r), Math.max(latest.get(nameOf(r)) ?? 0, r.avg_bytes));
  const names = [...latest.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([n]) => n);
  const series = names.map((n, i) => {
    const byStart = new Map(rows.filter((r) => nameOf(r) === n).map((r) => [r.period_start, r.avg_bytes]));
    return { label: n, values: starts.map((s) => byStart.get(s) ?? null), color: COLORS[i % COLORS.length], points: true };
  });
  return { xs: starts.map(dateToX), series };
}

