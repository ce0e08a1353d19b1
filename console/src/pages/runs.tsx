import { useEffect } from "preact/hooks";
import { get, post, type Page } from "../api/client";
import type { RunItem, TaskRun } from "../api/types";
import { formatDuration } from "../format";
import { Link, useParams, useRouteParams } from "../router";
import { useCan } from "../session";
import { apiQuery, withFilter } from "../state";
import { Badge, ErrorBox, Pager, Select, States, Time, useLoad, useNotice } from "../ui";

const STATUSES = ["pending", "running", "completed", "completed_with_errors", "failed", "cancelled"];
export const finished = (s: string) => !["pending", "running"].includes(s);

/** Reloads every `ms` while `active`. */
function usePoll(active: boolean, reload: () => void, ms = 1000) {
  useEffect(() => {
    if (!active) return;
    const t = setInterval(reload, ms);
    return () => clearInterval(t);
  }, [active]);
}

export function Runs() {
  const [params, set] = useParams();
  const operator = useCan("operator");
  const q = apiQuery(params);
  const l = useLoad(() => get<Page<TaskRun>>("/task-runs", { include_total: true, ...q }), JSON.stringify(q));
  usePoll(!!l.data?.items.some((r) => !finished(r.status)), l.reload, 2000);
  const [notice, note] = useNotice();
  const collect = async () => {
    try {
      await post("/collections", {});
      note("Collection started.");
      l.reload();
    } catch (x) {
      note(null, x);
    }
  };
  return (
    <>
      <div class="row">
        <h1>Runs</h1>
        {operator && <button onClick={collect}>Collect all now</button>}
      </div>
      {notice}
      <div class="filters">
        <Select
          label="Status"
          value={String(params.status ?? "")}
          options={[["", "any"], ...STATUSES.map((s) => [s, s.replace(/_/g, " ")] as [string, string])]}
          onChange={(v) => set(withFilter(params, "status", v))}
        />
        <Select
          label="Trigger"
          value={String(params.trigger ?? "")}
          options={[["", "any"], ["scheduled", "scheduled"], ["manual", "manual"], ["api", "api"]]}
          onChange={(v) => set(withFilter(params, "trigger", v))}
        />
      </div>
      <States l={l} empty={(d) => d.items.length === 0} emptyText="No run yet.">
        {(d) => (
          <>
            <table>
              <thead>
                <tr>
                  <th>Started</th>
                  <th>Task</th>
                  <th>Trigger</th>
                  <th>Status</th>
                  <th class="num">Items</th>
                  <th class="num">Duration</th>
                </tr>
              </thead>
              <tbody>
                {d.items.map((r) => (
                  <tr>
                    <td>
                      <Link href={`/runs/${r.run_id}`}>
                        <Time iso={r.started_at} />
                      </Link>
                    </td>
                    <td>{r.task_key}</td>
                    <td>{r.trigger}</td>
                    <td>
                      <Badge value={r.status} />
                    </td>
                    <td class="num">
                      {r.items_succeeded}/{r.items_total}
                      {r.items_failed ? ` (${r.items_failed} failed)` : ""}
                    </td>
                    <td class="num">{formatDuration(r.duration_ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager params={params} set={set} hasNext={d.has_next} nextCursor={d.next_cursor} total={d.total} count={d.items.length} />
          </>
        )}
      </States>
    </>
  );
}

export function RunPage() {
  const { id } = useRouteParams();
  const [params, set] = useParams();
  const operator = useCan("operator");
  const run = useLoad(() => get<TaskRun>(`/task-runs/${id}`), id);
  const q = apiQuery(params);
  const items = useLoad(() => get<Page<RunItem>>(`/task-runs/${id}/items`, { limit: 100, ...q }), id + JSON.stringify(q));
  const live = !!run.data && !finished(run.data.status);
  usePoll(live, () => {
    run.reload();
    items.reload();
  });
  const [notice, note] = useNotice();
  const cancel = async () => {
    try {
      await post(`/task-runs/${id}/actions/cancel`);
      note("Pending items cancelled; running ones finish.");
      run.reload();
    } catch (x) {
      note(null, x);
    }
  };
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
          <div class="filters">
            <Select
              label="Items"
              value={String(params.status ?? "")}
              options={[["", "all"], ["failed", "failed"], ["running", "running"], ["pending", "pending"], ["completed", "completed"], ["cancelled", "cancelled"]]}
              onChange={(v) => set(withFilter(params, "status", v))}
            />
          </div>
          <States l={items} empty={(d) => d.items.length === 0} emptyText="No items.">
            {(d) => (
              <>
                <table>
                  <thead>
                    <tr>
                      <th>Item</th>
                      <th>Status</th>
                      <th class="num">Duration</th>
                      <th>Error</th>
                    </tr>
                  </thead>
                  <tbody>
                    {d.items.map((i) => (
                      <tr>
                        <td>{i.instance_id ? <Link href={`/instances/${i.instance_id}`}>{i.instance_name ?? i.item_key}</Link> : i.item_key}</td>
                        <td>
                          <Badge value={i.status} />
                        </td>
                        <td class="num">{formatDuration(i.duration_ms)}</td>
                        <td class="error-text">{i.error ?? ""}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                <Pager params={params} set={set} hasNext={d.has_next} nextCursor={d.next_cursor} count={d.items.length} />
              </>
            )}
          </States>
        </>
      )}
    </States>
  );
}
