import { get } from "../api/client";
import type { FleetSummary, Grower } from "../api/types";
import { formatBytes, formatCount, formatDaysUntil, formatGrowth, formatPercent, parseBytes } from "../format";
import { Link, useParams } from "../router";
import { withFilter } from "../state";
import { DataTable, INSTANCE_COLS } from "../list";
import { Badge, Bytes, SearchInput, States, Time, useLoad } from "../ui";
import { TopTablesCard } from "./tables";

function Growers({ rows }: { rows: Grower[] }) {
  if (rows.length === 0) return <p class="empty">No database grew in this window.</p>;
  return (
    <DataTable
      rows={rows}
      cols={[
        { label: "Database", cell: (g) => <OnInstance db={g} /> },
        {
          label: "Change",
          num: true,
          cell: (g) => (
            <>
              +<Bytes n={g.change_bytes} />
            </>
          ),
        },
        { label: "%", num: true, cell: (g) => formatPercent(g.change_percent) },
        { label: "Size", num: true, cell: (g) => <Bytes n={g.size_bytes} /> },
      ]}
    />
  );
}

/** A database's link and the instance it is on. */
function OnInstance({ db }: { db: { id: number; database_name: string; instance: { name: string } } }) {
  return (
    <>
      <Link href={`/databases/${db.id}`}>{db.database_name}</Link> <span class="muted">on {db.instance.name}</span>
    </>
  );
}

export function Overview() {
  const [params, set] = useParams();
  const threshold = params.threshold_bytes ? String(params.threshold_bytes) : "";
  const l = useLoad(() => get<FleetSummary>("/fleet/summary", { threshold_bytes: threshold }), threshold);
  return (
    <>
      <h1>Overview</h1>
      <States l={l}>
        {(s) => (
          <>
            <section class="cards">
              <div class="card">
                <h2>Instances</h2>
                <p class="big">{s.instances.total}</p>
                <ul class="plain">
                  {Object.entries(s.instances.by_engine).map(([engine, c]) => (
                    <li>
                      <Link href={`/instances?db_type=${engine}`}>{engine}</Link>: {c.active} active
                      {c.inactive ? `, ${c.inactive} inactive` : ""}
                      {c.deleted ? `, ${c.deleted} deleted` : ""}
                    </li>
                  ))}
                </ul>
              </div>
              <div class="card">
                <h2>Databases</h2>
                <p class="big">{formatCount(s.databases.count)}</p>
                <p class="muted">{formatCount(s.databases.measured)} measured</p>
              </div>
              <div class="card">
                <h2>Total size</h2>
                <p class="big">
                  <Bytes n={s.databases.total_bytes} />
                </p>
                <p class="muted">{formatGrowth(s.databases.growth_bytes_per_day)}</p>
              </div>
              <div class="card">
                <h2>Last collection</h2>
                {s.last_collection ? (
                  <>
                    <p>
                      <Link href={`/runs/${s.last_collection.run_id}`}>
                        <Badge value={s.last_collection.status} />
                      </Link>
                    </p>
                    <p class="muted">
                      <Time iso={s.last_collection.started_at} /> · {s.last_collection.items_succeeded}/
                      {s.last_collection.items_total} ok
                      {s.last_collection.items_failed ? `, ${s.last_collection.items_failed} failed` : ""}
                    </p>
                  </>
                ) : (
                  <p class="empty">No collection yet.</p>
                )}
              </div>
              <div class="card">
                <h2>Stale instances</h2>
                <p class="big">{s.stale_instances.total}</p>
                <p class="muted">not collected within {s.stale_instances.hours} h</p>
              </div>
            </section>

            <section>
              <div class="row">
                <h2>Fills first</h2>
                <SearchInput
                  label="Threshold"
                  value={threshold ? formatBytes(Number(threshold)) : ""}
                  placeholder="50 GB"
                  onCommit={(v) => {
                    const b = v ? parseBytes(v) : null;
                    set(withFilter(params, "threshold_bytes", b ? String(b) : undefined));
                  }}
                />
                <span class="muted">
                  threshold <Bytes n={s.threshold_bytes} />
                </span>
              </div>
              {s.fills_first.length === 0 ? (
                <p class="empty">No database is growing towards the threshold.</p>
              ) : (
                <DataTable
                  rows={s.fills_first}
                  cols={[
                    { label: "Database", cell: (d) => <OnInstance db={d} /> },
                    { label: "Size", num: true, cell: (d) => <Bytes n={d.size_bytes} /> },
                    { label: "Growth", num: true, cell: (d) => formatGrowth(d.growth_bytes_per_day) },
                    {
                      label: "Reaches threshold",
                      cell: (d) => (
                        <>
                          {formatDaysUntil(d.days_until)} <span class="muted">{d.projected_date ?? ""}</span>
                        </>
                      ),
                    },
                  ]}
                />
              )}
            </section>

            <section class="two">
              <div>
                <h2>Top growers, 7 days</h2>
                <Growers rows={s.top_growers.days_7} />
              </div>
              <div>
                <h2>Top growers, 30 days</h2>
                <Growers rows={s.top_growers.days_30} />
              </div>
            </section>

            <TopTablesCard />

            {s.stale_instances.items.length > 0 && (
              <section>
                <h2>Stale instances</h2>
                <DataTable rows={s.stale_instances.items} cols={INSTANCE_COLS} />
              </section>
            )}
          </>
        )}
      </States>
    </>
  );
}
