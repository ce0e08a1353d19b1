import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { get, post, type Page } from "../api/client";
import type { ExportJob, LedgerItem } from "../api/types";
import { formatCount, formatDaysUntil, formatGrowth } from "../format";
import { BytesFilter, FilterSearch, FilterSelect, InventoryFilters, PagedList, RowsFilter } from "../list";
import { Link, useParams } from "../router";
import { exportFilters } from "../derive";
import { apiQuery } from "../state";
import { Badge, Bytes, ErrorBox, Time, useLoad } from "../ui";


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
  const list = { params, set, l };
  return (
    <>
      <div class="row">
        <h1>Database ledger</h1>
        <ExportButton kind="database_ledger" filters={exportFilters(params)} />
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <InventoryFilters at={list} />
        <FilterSearch label="Instance id" k="instance_id" at={list} />
        <BytesFilter label="Min size" placeholder="1 GB" k="min_size_bytes" at={list} />
        <FilterSelect label="Freshness" k="stale" options={[["", "any"], ["true", "stale (> 48 h)"], ["false", "fresh"]]} at={list} />
        <BytesFilter label="Threshold" placeholder="100 GB" k="threshold_bytes" at={list} />
        <RowsFilter at={list} />
      </form>
      <PagedList
        list={list}
        emptyText="No database matches these filters."
        total
        scroll
        tableRef={table}
        testid="ledger-table"
        cols={[
          { label: "Database", sort: "database_name", cell: (r) => <Link href={`/databases/${r.id}`}>{r.database_name}</Link> },
          { label: "Instance", sort: "instance_name", cell: (r) => <Link href={`/instances/${r.instance.id}`}>{r.instance.name}</Link> },
          { label: "Engine", cell: (r) => r.db_type },
          { label: "Size", sort: "size", num: true, cell: (r) => <Bytes n={r.size?.bytes} /> },
          { label: "Growth", sort: "growth", num: true, cell: (r) => formatGrowth(r.growth.bytes_per_day) },
          !!params.threshold_bytes && { label: "Reaches threshold", cell: (r) => formatDaysUntil(r.growth.days_until) },
          {
            label: "Collected",
            sort: "collected_at",
            cell: (r) => (
              <>
                <Time iso={r.size?.collected_at} /> <Badge value={r.sync_status} />
              </>
            ),
          },
          {
            label: "Tags",
            cell: (r) =>
              r.tags.map((t) => (
                <span class="tag" title={t.display_name}>
                  {t.name}
                </span>
              )),
          },
        ]}
      />
    </>
  );
}
