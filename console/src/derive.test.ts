import { describe, expect, it } from "vitest";
import type { Aggregation } from "./api/types";
import { exportFilters, pivot, recentChanges } from "./derive";

describe("page data", () => {
  it("exports the ledger's row filters, not its paging, sort or threshold", () => {
    const p = { search: "a", tag: ["x"], sort: "size", order: "desc", threshold_bytes: "100", cursor: "c", prev: "", limit: "50" };
    expect(exportFilters(p)).toEqual({ search: "a", tag: ["x"] });
  });
  it("lists day-over-day changes newest first, skipping flat days", () => {
    const items = [
      { collected_date: "2026-03-01", size_bytes: 100 },
      { collected_date: "2026-03-02", size_bytes: 150 },
      { collected_date: "2026-03-03", size_bytes: 150 },
      { collected_date: "2026-03-04", size_bytes: 120 },
    ];
    expect(recentChanges(items)).toEqual([
      { date: "2026-03-04", change: -30, size: 120 },
      { date: "2026-03-02", change: 50, size: 150 },
    ]);
    expect(recentChanges(items, 1)).toHaveLength(1);
  });
  it("pivots aggregates into one aligned line per name, biggest first", () => {
    const row = (name: string, start: string, avg: number) =>
      ({ instance: { id: 1, name }, period_start: start, avg_bytes: avg }) as Aggregation;
    const p = pivot([row("a", "2026-03-02", 10), row("b", "2026-03-02", 50), row("b", "2026-03-09", 60)], (r) => r.instance.name);
    expect(p.xs).toHaveLength(2);
    expect(p.series.map((s) => s.label)).toEqual(["b", "a"]);
    expect(p.series[1].values).toEqual([10, null]);
  });
});
