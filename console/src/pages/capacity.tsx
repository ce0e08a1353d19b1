import { useMemo } from "preact/hooks";
import { get, type Page, type QueryOf } from "../api/client";
import type { Aggregation } from "../api/types";
import { Chart } from "../chart";
import { formatPercent } from "../format";
import { Link, useParams } from "../router";
import { pivot } from "../derive";
import { withFilter, type Params } from "../state";
import { FilterSearch, PagedTable } from "../list";
import { Badge, Bytes, Select, States, useLoad } from "../ui";

type Period = NonNullable<QueryOf<"/capacity/instances">["period_type"]>;
const PERIODS: [Period, string][] = [["daily", "Daily"], ["weekly", "Weekly"], ["monthly", "Monthly"], ["quarterly", "Quarterly"]];

/** The biggest `n` instances or databases of the range, each with its own series. */
async function topSeries(scope: "instances" | "databases", period: Period, from?: string, to?: string, n = 6): Promise<Aggregation[]> {
  const range = { period_type: period, start_date: from, end_date: to };
  // The biggest of the newest period (one row each) unless a range is picked.
  const latest = from || to ? null : await latestPeriod(scope, period);
  const pick = latest ? { period_type: period, start_date: latest, end_date: latest } : range;
  const biggest = await get<Page<Aggregation>>(`/capacity/${scope}`, { ...pick, sort: "avg_bytes", order: "desc", limit: 200 });
  const picks = new Map<string, Aggregation>();
  for (const r of biggest.items) {
    const k = `${r.instance.id}/${r.database_name ?? ""}`;
    if (!picks.has(k) && picks.size < n) picks.set(k, r);
  }
  const pages = await Promise.all(
    [...picks.values()].map((r) =>
      get<Page<Aggregation>>(`/capacity/${scope}`, {
        ...range,
        instance_id: r.instance.id,
        database_name: scope === "databases" ? r.database_name : undefined,
        sort: "period_start",
        order: "desc",
        limit: 200,
      }),
    ),
  );
  return pages.flatMap((p) => p.items);
}

/** The newest period that has aggregates, for the top-N table when no range is picked. */
async function latestPeriod(scope: "instances" | "databases", period: Period): Promise<string | null> {
  const p = await get<Page<Aggregation>>(`/capacity/${scope}`, { period_type: period, sort: "period_start", order: "desc", limit: 1 });
  return p.items[0]?.period_start ?? null;
}

function Trend(props: { scope: "instances" | "databases"; period: Period; params: Params }) {
  const from = props.params.start_date ? String(props.params.start_date) : undefined;
  const to = props.params.end_date ? String(props.params.end_date) : undefined;
  const l = useLoad(() => topSeries(props.scope, props.period, from, to), `${props.scope}:${props.period}:${from}:${to}`);
  const data = useMemo(
    () => pivot(l.data ?? [], (r) => (props.scope === "databases" ? `${r.instance.name}/${r.database_name}` : r.instance.name)),
    [l.data],
  );
  return (
    <States l={l} empty={(d) => d.length === 0} emptyText="No aggregates for this period yet.">
      {() => <Chart name={`capacity-${props.scope}`} xs={data.xs} series={data.series} height={260} />}
    </States>
  );
}

export function Capacity() {
  const [params, set] = useParams();
  const period = (params.period_type as Period) ?? "weekly";
  const scope = params.scope === "databases" ? "databases" : "instances";
  const sort = params.sort ? String(params.sort) : "change_bytes";
  const q = {
    period_type: period,
    sort,
    order: params.order ?? "desc",
    limit: params.limit ?? 10,
    cursor: params.cursor,
    start_date: params.start_date,
    end_date: params.end_date,
  };
  // Without a picked range the ranking is of the newest period, one row per instance/database.
  const l = useLoad(async () => {
    let range = { start_date: q.start_date, end_date: q.end_date };
    if (!range.start_date && !range.end_date) {
      const latest = await latestPeriod(scope, period);
      if (latest) range = { start_date: latest, end_date: latest };
    }
    return { range, page: await get<Page<Aggregation>>(`/capacity/${scope}`, { ...q, ...range }) };
  }, JSON.stringify([scope, q]));
  const withSort = { ...params, sort };
  const at = { params, set };
  return (
    <>
      <h1>Capacity</h1>
      <div class="filters">
        <div role="group" aria-label="Period" class="seg">
          {PERIODS.map(([p, label]) => (
            <button aria-pressed={p === period} onClick={() => set(withFilter(params, "period_type", p))}>
              {label}
            </button>
          ))}
        </div>
        <FilterSearch label="From" placeholder="YYYY-MM-DD" k="start_date" at={at} />
        <FilterSearch label="To" placeholder="YYYY-MM-DD" k="end_date" at={at} />
        <Select
          label="Top N"
          value={String(params.limit ?? "10")}
          options={[["10", "10"], ["20", "20"], ["50", "50"]]}
          onChange={(v) => set(withFilter(params, "limit", v === "10" ? "" : v))}
        />
        <Select
          label="Of"
          value={scope}
          options={[["instances", "instances"], ["databases", "databases"]]}
          onChange={(v) => set(withFilter(params, "scope", v === "instances" ? "" : v))}
        />
      </div>
      <section class="two">
        <div>
          <h2>Instances</h2>
          <Trend scope="instances" period={period} params={params} />
        </div>
        <div>
          <h2>Databases</h2>
          <Trend scope="databases" period={period} params={params} />
        </div>
      </section>
      <h2>
        Top {scope} by {sort.replace("_", " ")}
      </h2>
      <States l={l} empty={(d) => d.page.items.length === 0} emptyText="No aggregates for this period yet.">
        {({ range, page: d }) => (
          <>
            <p class="muted">
              {range.start_date ?? "…"} – {range.end_date ?? "…"}
            </p>
            <PagedTable
              page={d}
              params={params}
              sortParams={withSort}
              set={set}
              cols={[
                { label: "Instance", sort: "instance_name", cell: (r) => <Link href={`/instances/${r.instance.id}`}>{r.instance.name}</Link> },
                scope === "databases" && { label: "Database", sort: "database_name", cell: (r) => r.database_name },
                {
                  label: "Period",
                  sort: "period_start",
                  cell: (r) => (
                    <>
                      {r.period_start}
                      {r.period_end !== r.period_start ? ` – ${r.period_end}` : ""}
                    </>
                  ),
                },
                { label: "Average", sort: "avg_bytes", num: true, cell: (r) => <Bytes n={r.avg_bytes} /> },
                {
                  label: "Change",
                  sort: "change_bytes",
                  num: true,
                  cell: (r) => (
                    <>
                      {r.change_bytes > 0 ? "+" : ""}
                      <Bytes n={r.change_bytes} />
                    </>
                  ),
                },
                { label: "Change %", sort: "change_percent", num: true, cell: (r) => formatPercent(r.change_percent) },
                { label: "Trend", cell: (r) => <Badge value={r.trend} /> },
              ]}
            />
          </>
        )}
      </States>
    </>
  );
}
