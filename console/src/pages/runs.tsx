import { get, post } from "../api/client";
import type { RunItem, TaskRun } from "../api/types";
import { formatDuration } from "../format";
import { FilterBar, PagedList, usePagedList } from "../list";
import { Link, useRouteParams } from "../router";
import { useCan } from "../session";
import { Badge, ErrorBox, States, Time, useAction, useLoad, usePolling } from "../ui";

const STATUSES = ["pending", "running", "completed", "completed_with_errors", "failed", "cancelled"];
const STATUS_OPTIONS: [string, string][] = [["", "any"], ...STATUSES.map((s) => [s, s.replace(/_/g, " ")] as [string, string])];
const TRIGGERS: [string, string][] = [["", "any"], ["scheduled", "scheduled"], ["manual", "manual"], ["api", "api"]];
const ITEM_STATUSES: [string, string][] = [["", "all"], ...["failed", "running", "pending", "completed", "cancelled"].map((s) => [s, s] as [string, string])];
export const finished = (s: string) => !["pending", "running"].includes(s);

export function Runs() {
  const operator = useCan("operator");
  const list = usePagedList<TaskRun>("/task-runs", { include_total: true });
  const l = list.l;
  usePolling(!!l.data?.items.some((r) => !finished(r.status)), l.reload, 2000);
  const [notice, act] = useAction();
  return (
    <>
      <div class="row">
        <h1>Runs</h1>
        {operator && <button onClick={() => act(() => post("/collections", {}), "Collection started.", l.reload)}>Collect all now</button>}
      </div>
      {notice}
      <FilterBar at={list} selects={[["Status", "status", STATUS_OPTIONS], ["Trigger", "trigger", TRIGGERS]]} />
      <PagedList
        list={list}
        emptyText="No run yet."
        total
        cols={[
          {
            label: "Started",
            cell: (r) => (
              <Link href={`/runs/${r.run_id}`}>
                <Time iso={r.started_at} />
              </Link>
            ),
          },
          { label: "Task", cell: (r) => r.task_key },
          { label: "Trigger", cell: (r) => r.trigger },
          { label: "Status", cell: (r) => <Badge value={r.status} /> },
          {
            label: "Items",
            num: true,
            cell: (r) => (
              <>
                {r.items_succeeded}/{r.items_total}
                {r.items_failed ? ` (${r.items_failed} failed)` : ""}
              </>
            ),
          },
          { label: "Duration", num: true, cell: (r) => formatDuration(r.duration_ms) },
        ]}
      />
    </>
  );
}

export function RunPage() {
  const { id } = useRouteParams();
  const operator = useCan("operator");
  const run = useLoad(() => get<TaskRun>(`/task-runs/${id}`), id);
  const list = usePagedList<RunItem>(`/task-runs/${id}/items`, { limit: 100 });
  const items = list.l;
  const live = !!run.data && !finished(run.data.status);
  usePolling(live, () => {
    run.reload();
    items.reload();
  });
  const [notice, act] = useAction();
  const cancel = () => act(() => post(`/task-runs/${id}/actions/cancel`), "Pending items cancelled; running ones finish.", run.reload);
  return (
    <States l={run}>
      {(r) => (
        <>
          <div class="row">
            <h1>
              Run <Badge value={r.status} />
            </h1>
            {operator && live && (
              <button class="danger" onClick={cancel}>
                Cancel run
              </button>
            )}
          </div>
          {notice}
          <p class="muted">
            {r.task_key} · {r.trigger} · started <Time iso={r.started_at} />
            {r.completed_at && (
              <>
                {" "}
                · finished <Time iso={r.completed_at} />
              </>
            )}{" "}
            · {formatDuration(r.duration_ms)}
          </p>
          <progress max={100} value={r.progress?.percent ?? 0} aria-label="progress" /> {r.progress?.percent ?? 0}% ·{" "}
          {r.items_succeeded} ok, {r.items_failed} failed of {r.items_total}
          {r.error && <ErrorBox error={new Error(r.error)} />}
          <FilterBar at={list} selects={[["Items", "status", ITEM_STATUSES]]} />
          <PagedList
            list={list}
            emptyText="No items."
            cols={[
              {
                label: "Item",
                cell: (i) => (i.instance_id ? <Link href={`/instances/${i.instance_id}`}>{i.instance_name ?? i.item_key}</Link> : i.item_key),
              },
              { label: "Status", cell: (i) => <Badge value={i.status} /> },
              { label: "Duration", num: true, cell: (i) => formatDuration(i.duration_ms) },
              { label: "Error", class: "error-text", cell: (i) => i.error ?? "" },
            ]}
          />
        </>
      )}
    </States>
  );
}
