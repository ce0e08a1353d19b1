import { get, type Page } from "../api/client";
import type { LogEntry } from "../api/types";
import { formatTime, zonedToIso } from "../format";
import { useParams } from "../router";
import { useSession } from "../session";
import { apiQuery, withFilter } from "../state";
import { Badge, Pager, SearchInput, Select, States, Time, useLoad } from "../ui";

export function Logs() {
  const [params, set] = useParams();
  const { timezone } = useSession();
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
        <SearchInput
          label={`From (${timezone})`}
          placeholder="2026-03-01 00:00"
          value={params.start_time ? formatTime(String(params.start_time), timezone) : ""}
          onCommit={(v) => set(withFilter(params, "start_time", zonedToIso(v, timezone)))}
        />
        <SearchInput
          label={`To (${timezone})`}
          placeholder="2026-03-02 00:00"
          value={params.end_time ? formatTime(String(params.end_time), timezone) : ""}
          onCommit={(v) => set(withFilter(params, "end_time", zonedToIso(v, timezone)))}
        />
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
