import { formatCount } from "../format";
import { del, get, type Page } from "../api/client";
import type { ExportJob } from "../api/types";
import { useParams } from "../router";
import { apiQuery, withFilter } from "../state";
import { Badge, Bytes, Pager, Select, States, Time, useLoad, useNotice } from "../ui";
import { useEffect } from "preact/hooks";

export function Exports() {
  const [params, set] = useParams();
  const q = apiQuery(params);
  const l = useLoad(() => get<Page<ExportJob>>("/exports", q), JSON.stringify(q));
  const busy = !!l.data?.items.some((e) => e.status === "queued" || e.status === "running");
  useEffect(() => {
    if (!busy) return;
    const t = setInterval(l.reload, 1000);
    return () => clearInterval(t);
  }, [busy]);
  const [notice, note] = useNotice();
  // The list carries no links; one job's GET presigns a fresh one.
  const download = async (e: ExportJob) => {
    try {
      const j = await get<ExportJob>(`/exports/${e.id}`);
      if (j.download_url) location.assign(j.download_url);
    } catch (x) {
      note(null, x);
    }
  };
  const remove = async (e: ExportJob) => {
    try {
      await del(`/exports/${e.id}`);
      note("Export deleted.");
      l.reload();
    } catch (x) {
      note(null, x);
    }
  };
  return (
    <>
      <h1>My exports</h1>
      {notice}
      <div class="filters">
        <Select
          label="Status"
          value={String(params.status ?? "")}
          options={[["", "any"], ["queued", "queued"], ["running", "running"], ["completed", "completed"], ["failed", "failed"]]}
          onChange={(v) => set(withFilter(params, "status", v))}
        />
        <Select
          label="Kind"
          value={String(params.kind ?? "")}
          options={[["", "any"], ["database_ledger", "ledger"], ["instances", "instances"], ["database_sizes", "sizes"]]}
          onChange={(v) => set(withFilter(params, "kind", v))}
        />
      </div>
      <States l={l} empty={(d) => d.items.length === 0} emptyText="No export yet: use Export CSV on the ledger.">
        {(d) => (
          <>
            <table>
              <thead>
                <tr>
                  <th>Requested</th>
                  <th>Kind</th>
                  <th>Status</th>
                  <th class="num">Rows</th>
                  <th class="num">Size</th>
                  <th>File</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {d.items.map((e) => (
                  <tr>
                    <td>
                      <Time iso={e.created_at} />
                    </td>
                    <td>{e.kind}</td>
                    <td>
                      <Badge value={e.status} />
                      {e.error && <span class="error-text"> {e.error}</span>}
                    </td>
                    <td class="num">{formatCount(e.rows_written)}</td>
                    <td class="num">
                      <Bytes n={e.bytes_written} />
                    </td>
                    <td>
                      {e.download_url ? (
                        <a href={e.download_url}>{e.file_name ?? "download"}</a>
                      ) : e.status === "completed" ? (
                        <button class="link" onClick={() => download(e)} title="a fresh presigned link">
                          <u>{e.file_name ?? "download"}</u>
                        </button>
                      ) : (
                        e.file_name
                      )}
                    </td>
                    <td>
                      <button class="secondary" onClick={() => remove(e)}>
                        Delete
                      </button>
                    </td>
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
