import type { LogEntry } from "../api/types";
import { formatTime, zonedToIso } from "../format";
import { FilterBar, FilterSearch, PagedList, usePagedList } from "../list";
import { useSession } from "../session";
import { withFilter } from "../state";
import { Badge, SearchInput, Time } from "../ui";
import { changeLines } from "../onboard";

const MODULES: [string, string][] = [["", "any"], ["audit", "audit trail"]];
const LEVELS: [string, string][] = [["", "any"], ...["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].map((l) => [l, l] as [string, string])];

export function Logs() {
  const { timezone } = useSession();
  const list = usePagedList<LogEntry>("/logs", { limit: 50 });
  const { params, set } = list;
  // A bound of the window, typed and shown in the session's time zone.
  const bound = (k: string, label: string, placeholder: string) => (
    <SearchInput
      label={`${label} (${timezone})`}
      placeholder={placeholder}
      value={params[k] ? formatTime(String(params[k]), timezone) : ""}
      onCommit={(v) => set(withFilter(params, k, zonedToIso(v, timezone)))}
    />
  );
  return (
    <>
      <h1>Event log and audit trail</h1>
      <FilterBar at={list} selects={[["Level", "level", LEVELS], ["Kind", "module", MODULES]]}>
        <FilterSearch label="Actor" k="actor" at={list} />
        <FilterSearch label="Target id" k="target_id" at={list} />
        <FilterSearch label="Action" k="action" at={list} />
        <FilterSearch label="Search" k="search" at={list} />
        {bound("start_time", "From", "2026-03-01 00:00")}
        {bound("end_time", "To", "2026-03-02 00:00")}
      </FilterBar>
      <p class="muted">Default window: the last 24 hours.</p>
      <PagedList
        list={list}
        emptyText="No event in this window."
        cols={[
          { label: "Time", cell: (e) => <Time iso={e.occurred_at} /> },
          { label: "Level", cell: (e) => <Badge value={e.level.toLowerCase()} /> },
          { label: "Module", cell: (e) => e.module },
          { label: "Who", cell: (e) => (e.actor ? `${e.actor} (${e.actor_role})` : "") },
          { label: "Message", title: (e) => JSON.stringify(e.context), cell: (e) => e.message },
          {
            label: "Changes",
            title: (e) => (e.request_id ? `request ${e.request_id}` : ""),
            cell: (e) => changeLines(e.changes).map((l) => <div>{l}</div>),
          },
        ]}
      />
    </>
  );
}
