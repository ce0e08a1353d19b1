import { formatCount } from "../format";
import { get, post } from "../api/client";
import { useCan } from "../session";
import { DataTable } from "../list";
import { Badge, Bytes, States, Time, useAction, useLoad } from "../ui";

interface Health {
  status: string;
  database: string;
  version: string;
}
interface Schedule {
  key: string;
  function: string;
  at: string;
  timezone: string;
  expression: string;
  next_run_at: string;
}
interface Partitions {
  tables: { table: string; partitions: { name: string; range: string; estimated_rows: number; bytes: number }[]; missing_future_months: string[]; default_rows: number }[];
}

export function System() {
  const admin = useCan("admin");
  const health = useLoad(() => get<Health>("/health"), "h");
  const schedules = useLoad(() => get<{ items: Schedule[] }>("/schedules"), "s");
  const parts = useLoad(() => (admin ? get<Partitions>("/partitions") : Promise.resolve(null)), String(admin));
  const [notice, act] = useAction();
  const ensure = () =>
    act(
      () => post<{ created?: string[] }>("/partitions/actions/ensure"),
      (r) => `Partitions ensured${r.created ? `: ${r.created.length} created` : ""}.`,
      parts.reload,
    );
  return (
    <>
      <h1>System</h1>
      {notice}
      <h2>Health</h2>
      <States l={health}>
        {(h) => (
          <p>
            <Badge value={h.status} /> database {h.database} · version {h.version}
          </p>
        )}
      </States>
      <h2>Schedules</h2>
      <States l={schedules} empty={(s) => s.items.length === 0}>
        {(s) => (
          <DataTable
            rows={s.items}
            cols={[
              { label: "Job", cell: (j) => j.key },
              {
                label: "At",
                cell: (j) => (
                  <>
                    {j.at} {j.timezone}
                  </>
                ),
              },
              { label: "Next run", cell: (j) => <Time iso={j.next_run_at} /> },
            ]}
          />
        )}
      </States>
      {admin && (
        <>
          <div class="row">
            <h2>Partitions</h2>
            <button onClick={ensure}>Ensure partitions</button>
          </div>
          <States l={parts}>
            {(p) =>
              p && (
                <DataTable
                  rows={p.tables}
                  cols={[
                    { label: "Table", cell: (t) => t.table },
                    { label: "Partitions", num: true, cell: (t) => t.partitions.length },
                    { label: "Rows (est.)", num: true, cell: (t) => formatCount(t.partitions.reduce((a, x) => a + Math.max(0, x.estimated_rows), 0)) },
                    { label: "Size", num: true, cell: (t) => <Bytes n={t.partitions.reduce((a, x) => a + x.bytes, 0)} /> },
                    { label: "Missing months", cell: (t) => t.missing_future_months.join(", ") || "none" },
                    { label: "Rows in DEFAULT", num: true, cell: (t) => t.default_rows },
                  ]}
                />
              )
            }
          </States>
        </>
      )}
    </>
  );
}
