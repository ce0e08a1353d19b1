import { formatCount } from "../format";
import { get, post } from "../api/client";
import { useCan } from "../session";
import { Badge, Bytes, States, Time, useLoad, useNotice } from "../ui";

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
  const [notice, note] = useNotice();
  const ensure = async () => {
    try {
      const r = await post<{ created?: string[] }>("/partitions/actions/ensure");
      note(`Partitions ensured${r.created ? `: ${r.created.length} created` : ""}.`);
      parts.reload();
    } catch (x) {
      note(null, x);
    }
  };
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
          <table>
            <thead>
              <tr>
                <th>Job</th>
                <th>At</th>
                <th>Next run</th>
              </tr>
            </thead>
            <tbody>
              {s.items.map((j) => (
                <tr>
                  <td>{j.key}</td>
                  <td>
                    {j.at} {j.timezone}
                  </td>
                  <td>
                    <Time iso={j.next_run_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
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
                <table>
                  <thead>
                    <tr>
                      <th>Table</th>
                      <th class="num">Partitions</th>
                      <th class="num">Rows (est.)</th>
                      <th class="num">Size</th>
                      <th>Missing months</th>
                      <th class="num">Rows in DEFAULT</th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.tables.map((t) => (
                      <tr>
                        <td>{t.table}</td>
                        <td class="num">{t.partitions.length}</td>
                        <td class="num">{formatCount(t.partitions.reduce((a, x) => a + Math.max(0, x.estimated_rows), 0))}</td>
                        <td class="num">
                          <Bytes n={t.partitions.reduce((a, x) => a + x.bytes, 0)} />
                        </td>
                        <td>{t.missing_future_months.join(", ") || "none"}</td>
                        <td class="num">{t.default_rows}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )
            }
          </States>
        </>
      )}
    </>
  );
}
