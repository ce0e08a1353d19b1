import { formatCount } from "../format";
import { del, get } from "../api/client";
import type { ExportJob } from "../api/types";
import { FilterBar, PagedList, usePagedList } from "../list";
import { Badge, Bytes, Time, useAction, usePolling } from "../ui";

const STATUSES: [string, string][] = [["", "any"], ["queued", "queued"], ["running", "running"], ["completed", "completed"], ["failed", "failed"]];
const KINDS: [string, string][] = [["", "any"], ["database_ledger", "ledger"], ["instances", "instances"], ["database_sizes", "sizes"]];

export function Exports() {
  const list = usePagedList<ExportJob>("/exports");
  const l = list.l;
  usePolling(!!l.data?.items.some((e) => e.status === "queued" || e.status === "running"), l.reload);
  const [notice, act, note] = useAction();
  // The list carries no links; one job's GET presigns a fresh one.
  const download = async (e: ExportJob) => {
    try {
      const j = await get<ExportJob>(`/exports/${e.id}`);
      if (j.download_url) location.assign(j.download_url);
    } catch (x) {
      note(null, x);
    }
  };
  const file = (e: ExportJob) =>
    e.download_url ? (
      <a href={e.download_url}>{e.file_name ?? "download"}</a>
    ) : e.status === "completed" ? (
      <button class="link" onClick={() => download(e)} title="a fresh presigned link">
        <u>{e.file_name ?? "download"}</u>
      </button>
    ) : (
      e.file_name
    );
  return (
    <>
      <h1>My exports</h1>
      {notice}
      <FilterBar at={list} selects={[["Status", "status", STATUSES], ["Kind", "kind", KINDS]]} />
      <PagedList
        list={list}
        emptyText="No export yet: use Export CSV on the ledger."
        cols={[
          { label: "Requested", cell: (e) => <Time iso={e.created_at} /> },
          { label: "Kind", cell: (e) => e.kind },
          {
            label: "Status",
            cell: (e) => (
              <>
                <Badge value={e.status} />
                {e.error && <span class="error-text"> {e.error}</span>}
              </>
            ),
          },
          { label: "Rows", num: true, cell: (e) => formatCount(e.rows_written) },
          { label: "Size", num: true, cell: (e) => <Bytes n={e.bytes_written} /> },
          { label: "File", cell: file },
          {
            cell: (e) => (
              <button class="secondary" onClick={() => act(() => del(`/exports/${e.id}`), "Export deleted.", l.reload)}>
                Delete
              </button>
            ),
          },
        ]}
      />
    </>
  );
}
