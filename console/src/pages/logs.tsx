import { get, type Page } from "../api/client";
import type { LogEntry } from "../api/types";
import { useParams } from "../router";
import { apiQuery, withFilter } from "../state";
import { Badge, Pager, SearchInput, Select, States, Time, useLoad } from "../ui";

/** `datetime-local` value ("2026-03-01T10:00") read as UTC, to the API's RFC 3339. */
export function localToIso(v: string): string {
  return v ? (v.length === 16 ? `${v}:00Z` : v) : "";
}

export function Logs() {
  const [params, set] = useParams();
  const q = apiQuery(params);
  const l = useLoad(() => get<Page<LogEntry>>("/logs", { limit: 50, ...q }), JSON.stringify(q));
  const f = (k: string) => (params[k] === undefined ? "" : String(params[k]));
  return (
    <>
      <h1>Event log</h1>
      <div class="filters">
        <Select
          label="Level"
          value={f("level")}
          options={[["", "any"], ["DEBUG", "DEBUG"], ["INFO", "INFO"], ["WARNING", "WARNING"], ["ERROR", "ERROR"], ["CRITICAL", "CRITICAL"]]}
          onChange={(v) => set(withFilter(params, "level", v))}
        />
        <SearchInput label="Module" value={f("module")} onCommit={(v) => set(withFilter(params, "module", v))} />
        <SearchInput label="Search" value={f("search")} onCommit={(v) => set(withFilter(params, "search", v))} />
        <SearchInput label="From (UTC)" placeholder="2026-03-01T00:00" value={f("start_time")} onCommit={(v) => set(withFilter(params, "start_time", localToIso(v)))} />
        <SearchInput label="To (UTC)" placeholder="2026-03-02T00:00" value={f("end_time")} onCommit={(v) => set(withFilter(params, "end_time", localToIso(v)))} />
      </div>
      <p class="muted">Default window: the last 24 hours.</p>
      <States l={l} empty={(d) => d.items.length === 0} emptyText="No event in this window.">
        {(d) => (
          <>
            <table>
              <thead>
                <tr>
                  <th>Time</th>
                  <th>Level</th>
                  <th>Module</th>
                  <th>Message</th>
                </tr>
              </thead>
              <tbody>
                {d.items.map((e) => (
                  <tr>
                    <td>
                      <Time iso={e.occurred_at} />
                    </td>
                    <td>
                      <Badge value={e.level.toLowerCase()} />
                    </td>
                    <td>{e.module}</td>
                    <td title={JSON.stringify(e.context)}>{e.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager params={params} set={set} hasNext={d.has_next} nextCursor={d.next_cursor} count={d.items.length} />
          </>
        )}
      </States>
    </>
  );
}
