import { useMemo } from "preact/hooks";
import { get } from "../api/client";
import type { DatabaseSizes } from "../api/types";
import { Chart } from "../chart";
import { dateRanges, formatBytes, formatDaysUntil, formatGrowth, formatPercent, parseBytes, todayIn } from "../format";
import { Link, useParams, useRouteParams } from "../router";
import { recentChanges } from "../derive";
import { chartData, regression, type Point } from "../series";
import { useSession } from "../session";
import { withFilter } from "../state";
import { Bytes, SearchInput, Select, States, useLoad } from "../ui";
import { DatabaseTables } from "./tables";

/** The history of `days` days, in calls of at most 400 days each. */
async function history(id: string, days: number, tz: string): Promise<DatabaseSizes> {
  const ranges = dateRanges(todayIn(tz), days);
  const parts = await Promise.all(
    ranges.map(([start_date, end_date]) => get<DatabaseSizes>(`/databases/${id}/sizes`, { start_date, end_date })),
  );
  return { ...parts[parts.length - 1], start_date: ranges[0][0], items: parts.flatMap((p) => p.items) };
}

export function DatabasePage() {
  const { id } = useRouteParams();
  const { timezone } = useSession();
  const [params, set] = useParams();
  const days = Number(params.days ?? 90);
  const tab = params.tab === "tables" ? "tables" : "history";
  const threshold = params.threshold_bytes ? Number(params.threshold_bytes) : null;
  const l = useLoad(() => history(id, days, timezone), `${id}:${days}`);
  const points: Point[] = useMemo(
    () => (l.data?.items ?? []).map((p) => ({ date: p.collected_date, bytes: p.size_bytes })),
    [l.data],
  );
  const cd = useMemo(() => ({ since: performance.now(), ...chartData(points, threshold) }), [points, threshold]);
  const series = useMemo(
    () => [
      { label: "daily", values: cd.daily, color: "#0b5d7a", points: true, width: 1.5 },
      { label: "weekly avg", values: cd.weekly, color: "#e67e22", width: 2 },
      { label: "monthly avg", values: cd.monthly, color: "#8e44ad", width: 2 },
      { label: "forecast", values: cd.forecast, color: "#c0392b", dash: [6, 4] },
    ],
    [cd],
  );
  return (
    <States l={l}>
      {(d) => {
        const first = d.items[0]?.size_bytes;
        const last = d.items[d.items.length - 1]?.size_bytes;
        const slope = regression(points)?.slope ?? null;
        return (
          <>
            <h1>
              {d.database_name} <span class="muted">on</span>{" "}
              <Link href={`/instances/${d.instance.id}`}>{d.instance.name}</Link>
            </h1>
            <p class="muted">
              {d.db_type} · {d.instance.host}:{d.instance.port}
            </p>
            <nav class="tabs" aria-label="database">
              <Link href={`/databases/${id}`} aria-current={tab === "tables" ? undefined : "page"}>
                History
              </Link>
              <Link href={`/databases/${id}?tab=tables`} aria-current={tab === "tables" ? "page" : undefined}>
                Tables
              </Link>
            </nav>
            {tab === "tables" ? (
              <DatabaseTables id={id} database={d.database_name} />
            ) : (
              <>
            <div class="filters">
              <Select
                label="Range"
                value={String(days)}
                options={[["30", "30 days"], ["90", "90 days"], ["365", "1 year"], ["730", "2 years"]]}
                onChange={(v) => set(withFilter(params, "days", v === "90" ? "" : v))}
              />
              <SearchInput
                label="Threshold"
                placeholder="100 GB"
                value={threshold ? formatBytes(threshold) : ""}
                onCommit={(v) => set(withFilter(params, "threshold_bytes", v ? String(parseBytes(v) ?? "") : ""))}
              />
            </div>
            <section class="cards">
              <div class="card">
                <h2>Size</h2>
                <p class="big">
                  <Bytes n={last} />
                </p>
              </div>
              <div class="card">
                <h2>Growth (30-day slope)</h2>
                <p class="big">{formatGrowth(slope === null ? null : Math.round(slope))}</p>
              </div>
              <div class="card">
                <h2>Change over range</h2>
                <p class="big">
                  <Bytes n={last !== undefined && first !== undefined ? last - first : null} />
                </p>
                <p class="muted">{first ? formatPercent(((last - first) / first) * 100) : ""}</p>
              </div>
              {threshold && (
                <div class="card">
                  <h2>
                    Reaches <Bytes n={threshold} />
                  </h2>
                  <p class="big">{formatDaysUntil(cd.days)}</p>
                </div>
              )}
            </section>
            {d.items.length === 0 ? (
              <p class="empty">No size collected in this range.</p>
            ) : (
              <Chart name="database" xs={cd.xs} series={series} threshold={threshold} since={cd.since} />
            )}
            <h2>Recent changes</h2>
            <table>
              <thead>
                <tr>
                  <th>Date</th>
                  <th class="num">Change</th>
                  <th class="num">Size</th>
                </tr>
              </thead>
              <tbody>
                {recentChanges(d.items).map((c) => (
                  <tr>
                    <td>{c.date}</td>
                    <td class="num">
                      {c.change > 0 ? "+" : ""}
                      <Bytes n={c.change} />
                    </td>
                    <td class="num">
                      <Bytes n={c.size} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
              </>
            )}
          </>
        );
      }}
    </States>
  );
}
