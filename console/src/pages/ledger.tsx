import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { get, post, type Page } from "../api/client";
import type { ExportJob, LedgerItem } from "../api/types";
import { formatBytes, formatCount, formatDaysUntil, formatGrowth, parseBytes } from "../format";
import { Link, useParams } from "../router";
import { exportFilters } from "../derive";
import { apiQuery, withFilter } from "../state";
import { Badge, Bytes, ErrorBox, Pager, SearchInput, Select, SortTh, States, Time, useLoad } from "../ui";


export function ExportButton(props: { kind: "database_ledger" | "instances"; filters: Record<string, unknown> }) {
  const [job, setJob] = useState<ExportJob | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const start = async () => {
    setErr(null);
    try {
      let j = await post<ExportJob>("/exports", { kind: props.kind, filters: props.filters });
      setJob(j);
      while (j.status === "queued" || j.status === "running") {
        await new Promise((r) => setTimeout(r, 500));
        j = await get<ExportJob>(`/exports/${j.id}`);
        setJob(j);
      }
    } catch (e) {
      setErr(e);
    }
  };
  const busy = job && (job.status === "queued" || job.status === "running");
  return (
    <span class="export">
      <button onClick={start} disabled={!!busy}>
        Export CSV
      </button>
      {job && (
        <span role="status" aria-live="polite">
          {" "}
          <Badge value={job.status} /> {formatCount(job.rows_written)} rows
          {job.status === "completed" && job.download_url && (
            <>
              {" "}
              <a href={job.download_url} download={job.file_name ?? undefined} data-testid="download-link">
                Download {job.file_name}
              </a>
            </>
          )}
          {job.error && <span class="error-text"> {job.error}</span>}
        </span>
      )}
      <ErrorBox error={err} />
    </span>
  );
}

export function Ledger() {
  const [params, set] = useParams(["tag"]);
  const q = apiQuery(params);
  const key = JSON.stringify(q);
  const received = useRef(0);
  const l = useLoad(async () => {
    const page = await get<Page<LedgerItem>>("/databases/ledger", { include_total: true, ...q });
    received.current = performance.now();
    return page;
  }, key);
  const table = useRef<HTMLTableElement>(null);
  // Time from the response to the rows in the DOM (reported by the end-to-end run).
  useLayoutEffect(() => {
    if (l.data && table.current && received.current) {
      const m = performance.measure("ledger:render", { start: received.current, end: performance.now() });
      table.current.dataset.renderMs = m.duration.toFixed(2);
      received.current = 0;
    }
  }, [l.data]);
  const f = (k: string) => (params[k] === undefined ? "" : String(params[k]));
  const tags = Array.isArray(params.tag) ? params.tag : params.tag ? [params.tag] : [];
  return (
    <>
      <div class="row">
        <h1>Database ledger</h1>
        <ExportButton kind="database_ledger" filters={exportFilters(params)} />
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <SearchInput label="Search" value={f("search")} onCommit={(v) => set(withFilter(params, "search", v))} />
        <Select
          label="Engine"
          value={f("db_type")}
          options={[["", "any"], ["postgresql", "PostgreSQL"], ["mysql", "MySQL/MariaDB"]]}
          onChange={(v) => set(withFilter(params, "db_type", v))}
        />
        <SearchInput
          label="Tags"
          placeholder="prod, eu"
          value={tags.join(", ")}
          onCommit={(v) => set(withFilter(params, "tag", v.split(",").map((s) => s.trim()).filter(Boolean)))}
        />
        <Select
          label="Tag match"
          value={f("tag_mode")}
          options={[["", "any"], ["all", "all"]]}
          onChange={(v) => set(withFilter(params, "tag_mode", v))}
        />
        <SearchInput label="Instance id" value={f("instance_id")} onCommit={(v) => set(withFilter(params, "instance_id", v))} />
        <SearchInput
          label="Min size"
          placeholder="1 GB"
          value={params.min_size_bytes ? formatBytes(Number(params.min_size_bytes)) : ""}
          onCommit={(v) => set(withFilter(params, "min_size_bytes", v ? String(parseBytes(v) ?? v) : ""))}
        />
        <Select
          label="Freshness"
          value={f("stale")}
          options={[["", "any"], ["true", "stale (> 48 h)"], ["false", "fresh"]]}
          onChange={(v) => set(withFilter(params, "stale", v))}
        />
        <SearchInput
          label="Threshold"
          placeholder="100 GB"
          value={params.threshold_bytes ? formatBytes(Number(params.threshold_bytes)) : ""}
          onCommit={(v) => set(withFilter(params, "threshold_bytes", v ? String(parseBytes(v) ?? v) : ""))}
        />
        <Select
          label="Rows"
          value={f("limit")}
          options={[["", "20"], ["50", "50"], ["100", "100"], ["200", "200"]]}
          onChange={(v) => set(withFilter(params, "limit", v))}
        />
      </form>
      <States l={l} empty={(d) => d.items.length === 0} emptyText="No database matches these filters.">
        {(d) => (
          <>
            <div class="scroll">
              <table ref={table} data-testid="ledger-table">
                <thead>
                  <tr>
                    <SortTh col="database_name" label="Database" params={params} set={set} />
                    <SortTh col="instance_name" label="Instance" params={params} set={set} />
                    <th>Engine</th>
                    <SortTh col="size" label="Size" params={params} set={set} num />
                    <SortTh col="growth" label="Growth" params={params} set={set} num />
                    {params.threshold_bytes && <th>Reaches threshold</th>}
                    <SortTh col="collected_at" label="Collected" params={params} set={set} />
                    <th>Tags</th>
                  </tr>
                </thead>
                <tbody>
                  {d.items.map((r) => (
                    <tr>
                      <td>
                        <Link href={`/databases/${r.id}`}>{r.database_name}</Link>
                      </td>
                      <td>
                        <Link href={`/instances/${r.instance.id}`}>{r.instance.name}</Link>
                      </td>
                      <td>{r.db_type}</td>
                      <td class="num">
                        <Bytes n={r.size?.bytes} />
                      </td>
                      <td class="num">{formatGrowth(r.growth.bytes_per_day)}</td>
                      {params.threshold_bytes && <td>{formatDaysUntil(r.growth.days_until)}</td>}
                      <td>
                        <Time iso={r.size?.collected_at} /> <Badge value={r.sync_status} />
                      </td>
                      <td>
                        {r.tags.map((t) => (
                          <span class="tag" title={t.display_name}>
                            {t.name}
                          </span>
                        ))}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <Pager params={params} set={set} hasNext={d.has_next} nextCursor={d.next_cursor} total={d.total} count={d.items.length} />
          </>
        )}
      </States>
    </>
  );
}
