import { useMemo, useState } from "preact/hooks";
import { del, get, patch, post, type Page } from "../api/client";
import type { Aggregation, CheckResult, Credential, Instance, InstanceDatabase, RunItem, Tag, TaskRun } from "../api/types";
import { checkText } from "../onboard";
import { Chart } from "../chart";
import { formatGrowth } from "../format";
import { Link, navigate, useRouteParams } from "../router";
import { dateToX } from "../series";
import { useCan } from "../session";
import { toggleOne, togglePage } from "../state";
import { DataTable, FilterSelect, INSTANCE_COLS, InventoryFilters, PagedList, RowsFilter, usePagedList } from "../list";
import { Badge, Bytes, ErrorBox, Field, Select, States, Time, useAction, useLoad, useNotice } from "../ui";


function InstanceForm(props: { initial?: Instance; onDone: (i: Instance | null) => void }) {
  const admin = useCan("admin");
  const i = props.initial;
  const [v, setV] = useState({
    name: i?.name ?? "",
    db_type: i?.db_type ?? "postgresql",
    host: i?.host ?? "",
    port: String(i?.port ?? 5432),
    credential_id: i?.credential ? String(i.credential.id) : "",
    database_name: i?.database_name ?? "",
    description: i?.description ?? "",
    exclude_databases: (i?.exclude_databases ?? []).join(", "),
    is_active: i?.is_active ?? true,
  });
  const [err, setErr] = useState<unknown>(null);
  const creds = useLoad(
    () => (admin ? get<Page<Credential>>("/credentials", { limit: 200 }) : Promise.resolve(null)),
    String(admin),
  );
  const upd = (k: string) => (e: Event) => setV({ ...v, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    const body = {
      name: v.name,
      db_type: v.db_type,
      host: v.host,
      port: Number(v.port),
      credential_id: v.credential_id ? Number(v.credential_id) : null,
      database_name: v.database_name || null,
      description: v.description || null,
      exclude_databases: v.exclude_databases.split(",").map((s) => s.trim()).filter(Boolean),
      is_active: v.is_active,
    };
    try {
      const saved = i ? await patch<Instance>(`/instances/${i.id}`, body) : await post<Instance>("/instances", body);
      props.onDone(saved);
    } catch (x) {
      setErr(x);
    }
  };
  return (
    <form class="panel" onSubmit={submit} aria-label={i ? "Edit instance" : "New instance"}>
      <h2>{i ? `Edit ${i.name}` : "New instance"}</h2>
      <ErrorBox error={err} />
      <div class="filters">
        <Field label="Name">
          <input required value={v.name} onInput={upd("name")} />
        </Field>
        <Field label="Engine">
          <select value={v.db_type} onChange={upd("db_type")}>
            <option value="postgresql">PostgreSQL</option>
            <option value="mysql">MySQL/MariaDB</option>
          </select>
        </Field>
        <Field label="Host">
          <input required value={v.host} onInput={upd("host")} />
        </Field>
        <Field label="Port">
          <input required type="number" min={1} max={65535} value={v.port} onInput={upd("port")} />
        </Field>
        <Field label="Credential">
          {creds.data ? (
            <select value={v.credential_id} onChange={upd("credential_id")}>
              <option value="">none</option>
              {creds.data.items.map((c) => (
                <option value={String(c.id)}>
                  {c.name} ({c.username})
                </option>
              ))}
            </select>
          ) : (
            <input type="number" value={v.credential_id} onInput={upd("credential_id")} placeholder="id" />
          )}
        </Field>
        <Field label="Database">
          <input value={v.database_name} onInput={upd("database_name")} />
        </Field>
        <Field label="Description">
          <input value={v.description} onInput={upd("description")} />
        </Field>
        <Field label="Exclude databases">
          <input value={v.exclude_databases} onInput={upd("exclude_databases")} placeholder="tmp, scratch" />
        </Field>
        <label class="check">
          <input type="checkbox" checked={v.is_active} onChange={(e) => setV({ ...v, is_active: (e.target as HTMLInputElement).checked })} />
          Active
        </label>
      </div>
      <button type="submit">Save</button>{" "}
      <button type="button" class="secondary" onClick={() => props.onDone(null)}>
        Cancel
      </button>
    </form>
  );
}

function Credentials() {
  const l = useLoad(() => get<Page<Credential>>("/credentials", { limit: 200 }), "c");
  const [v, setV] = useState({ name: "", username: "", password: "" });
  const [notice, note] = useNotice();
  const create = async (e: Event) => {
    e.preventDefault();
    try {
      await post("/credentials", v);
      setV({ name: "", username: "", password: "" });
      note("Credential created.");
      l.reload();
    } catch (x) {
      note(null, x);
    }
  };
  const remove = async (c: Credential) => {
    if (!confirm(`Delete credential ${c.name}?`)) return;
    try {
      await del(`/credentials/${c.id}`);
      l.reload();
    } catch (x) {
      note(null, x);
    }
  };
  return (
    <details class="panel">
      <summary>Credentials (admin)</summary>
      {notice}
      <States l={l} empty={(d) => d.items.length === 0} emptyText="No credentials.">
        {(d) => (
          <table>
            <tbody>
              {d.items.map((c) => (
                <tr>
                  <td>{c.id}</td>
                  <td>{c.name}</td>
                  <td>{c.username}</td>
                  <td>
                    <button class="secondary" onClick={() => remove(c)}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </States>
      <form class="filters" onSubmit={create}>
        <Field label="Credential name">
          <input required value={v.name} onInput={(e) => setV({ ...v, name: (e.target as HTMLInputElement).value })} />
        </Field>
        <Field label="Username">
          <input required value={v.username} onInput={(e) => setV({ ...v, username: (e.target as HTMLInputElement).value })} />
        </Field>
        <Field label="Password">
          <input
            type="password"
            autoComplete="new-password"
            value={v.password}
            onInput={(e) => setV({ ...v, password: (e.target as HTMLInputElement).value })}
          />
        </Field>
        <button type="submit">Add credential</button>
      </form>
    </details>
  );
}

function BulkBar(props: { selected: Set<number>; clear: () => void; done: () => void }) {
  const tags = useLoad(() => get<Page<Tag>>("/tags", { limit: 200, status: "active" }), "tags");
  const [tagId, setTagId] = useState("");
  const [newTag, setNewTag] = useState("");
  const [notice, note] = useNotice();
  const ids = [...props.selected];
  const run = async (what: "assign" | "remove" | "remove-all") => {
    try {
      let tag = tagId ? Number(tagId) : null;
      if (what !== "remove-all" && !tag && newTag.trim()) {
        const t = await post<Tag>("/tags", { name: newTag.trim(), display_name: newTag.trim(), category: "console" });
        tag = t.id;
        tags.reload();
      }
      if (what !== "remove-all" && !tag) return note(null, new Error("Pick a tag or type a new tag name."));
      const body = what === "remove-all" ? { instance_ids: ids } : { instance_ids: ids, tag_ids: [tag] };
      await post(`/tags/bulk/${what}`, body);
      note(`${what === "assign" ? "Tagged" : "Untagged"} ${ids.length} instance(s).`);
      props.done();
    } catch (x) {
      note(null, x);
    }
  };
  const collect = async () => {
    try {
      const r = await post<{ run_id: string }>("/collections", { instance_ids: ids });
      navigate(`/runs/${r.run_id}`);
    } catch (x) {
      note(null, x);
    }
  };
  const check = async () => {
    try {
      const r = await post<{ summary: { ok: number; failed: number } }>("/instances/actions/check", { instance_ids: ids.slice(0, 200) });
      note(`Checked ${ids.length > 200 ? "the first 200" : ids.length}: ${r.summary.ok} ok, ${r.summary.failed} failed.`);
      props.done();
    } catch (x) {
      note(null, x);
    }
  };
  return (
    <div class="bulk" role="region" aria-label="bulk actions">
      <strong>{ids.length} selected</strong>
      <Select
        label="Tag"
        value={tagId}
        options={[["", "—"], ...(tags.data?.items ?? []).map((t) => [String(t.id), t.name] as [string, string])]}
        onChange={setTagId}
      />
      <Field label="or new tag">
        <input value={newTag} onInput={(e) => setNewTag((e.target as HTMLInputElement).value)} placeholder="name" />
      </Field>
      <button onClick={() => run("assign")}>Assign tag</button>
      <button onClick={() => run("remove")}>Remove tag</button>
      <button onClick={() => run("remove-all")}>Remove all tags</button>
      <button onClick={collect}>Collect now</button>
      <button onClick={check}>Check connection</button>
      <button class="secondary" onClick={props.clear}>
        Clear selection
      </button>
      {notice}
    </div>
  );
}

const STATUSES: [string, string][] = [["", "not deleted"], ["active", "active"], ["inactive", "inactive"], ["deleted", "deleted"]];
const CHECKS: [string, string][] = [["", "any"], ["never", "never checked"], ...["ok", "dns", "refused", "timeout", "tls", "auth", "permission", "other"].map((c) => [c, c] as [string, string])];

export function Instances() {
  const operator = useCan("operator");
  const admin = useCan("admin");
  const list = usePagedList<Instance>("/instances", { include_total: true }, ["tag"]);
  const l = list.l;
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [editing, setEditing] = useState<Instance | "new" | null>(null);
  const [notice, run, note] = useAction();
  const act = <R,>(what: () => Promise<R>, msg: string | ((r: R) => string)) => run(what, msg, l.reload);
  const ids = l.data?.items.map((i) => i.id) ?? [];
  return (
    <>
      <div class="row">
        <h1>Instances</h1>
        {operator && <button onClick={() => setEditing("new")}>New instance</button>}
        {operator && <Link href="/instances/import">Import CSV</Link>}
      </div>
      {editing && (
        <InstanceForm
          initial={editing === "new" ? undefined : editing}
          onDone={(saved) => {
            setEditing(null);
            if (saved) {
              note(`Saved ${saved.name}.`);
              l.reload();
            }
          }}
        />
      )}
      {admin && <Credentials />}
      {notice}
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <InventoryFilters at={list}>
          <FilterSelect label="Status" k="status" options={STATUSES} at={list} />
          <FilterSelect label="Last check" k="check_status" options={CHECKS} at={list} />
        </InventoryFilters>
        <RowsFilter at={list} />
      </form>
      {operator && selected.size > 0 && (
        <BulkBar selected={selected} clear={() => setSelected(new Set())} done={() => l.reload()} />
      )}
      <PagedList
        list={list}
        emptyText="No instance matches these filters."
        total
        scroll
        testid="instances-table"
        cols={[
          operator && {
            head: (
              <input
                type="checkbox"
                aria-label="Select page"
                checked={ids.length > 0 && ids.every((id) => selected.has(id))}
                onChange={() => setSelected(togglePage(selected, ids))}
              />
            ),
            cell: (i) => (
              <input type="checkbox" aria-label={`Select ${i.name}`} checked={selected.has(i.id)} onChange={() => setSelected(toggleOne(selected, i.id))} />
            ),
          },
          { ...INSTANCE_COLS[0], label: "Name", sort: "name" },
          { ...INSTANCE_COLS[1], sort: "db_type" },
          { ...INSTANCE_COLS[2], sort: "host" },
          { label: "Status", cell: (i) => <Badge value={i.status} /> },
          { label: "Tags", cell: (i) => i.tags.map((t) => <span class="tag">{t.name}</span>) },
          { ...INSTANCE_COLS[3], sort: "last_collected_at" },
          { label: "Check", title: (i) => i.last_check?.message ?? "", cell: (i) => (i.last_check ? <Badge value={i.last_check.status} /> : "—") },
          operator && {
            label: "Actions",
            class: "actions",
            cell: (i) =>
              i.status === "deleted" ? (
                <button class="secondary" onClick={() => act(() => post(`/instances/${i.id}/actions/restore`), `Restored ${i.name}.`)}>
                  Restore
                </button>
              ) : (
                <>
                  <button class="secondary" onClick={() => setEditing(i)}>
                    Edit
                  </button>
                  <button
                    class="secondary"
                    onClick={() =>
                      run(
                        () => post<{ status?: string }>(`/instances/${i.id}/actions/collect`),
                        // 202: queued behind other work on the same server; the run shows the end.
                        (r) => (r.status === "queued" ? `${i.name} is queued on its server; see Runs.` : `Collected ${i.name}.`),
                        l.reload,
                      )
                    }
                  >
                    Collect
                  </button>
                  <button
                    class="secondary"
                    onClick={() => act(() => post<CheckResult>(`/instances/${i.id}/actions/check`), (r) => `${i.name}: ${checkText(r)}`)}
                  >
                    Check
                  </button>
                  <button
                    class="secondary"
                    onClick={() => confirm(`Delete ${i.name}?`) && act(() => del(`/instances/${i.id}`), `Deleted ${i.name}.`)}
                  >
                    Delete
                  </button>
                </>
              ),
          },
        ]}
      />
    </>
  );
}

async function lastRunErrors(instanceId: number): Promise<{ run: TaskRun | null; items: RunItem[] }> {
  const runs = await get<Page<TaskRun>>("/task-runs", { task_key: "collect_databases", limit: 1 });
  const run = runs.items[0] ?? null;
  if (!run) return { run, items: [] };
  const items = await get<Page<RunItem>>(`/task-runs/${run.run_id}/items`, { status: "failed", limit: 200 });
  return { run, items: items.items.filter((i) => i.instance_id === instanceId) };
}

export function InstancePage() {
  const { id } = useRouteParams();
  const inst = useLoad(() => get<Instance>(`/instances/${id}`, { include_deleted: true }), id);
  const dbs = useLoad(() => get<Page<InstanceDatabase>>(`/instances/${id}/databases`, { sort: "size", limit: 200 }), id);
  const trend = useLoad(
    () => get<Page<Aggregation>>("/capacity/instances", { instance_id: id, period_type: "daily", sort: "period_start", order: "desc", limit: 200 }),
    id,
  );
  const errors = useLoad(() => lastRunErrors(Number(id)), id);
  const series = useMemo(() => {
    const rows = [...(trend.data?.items ?? [])].reverse();
    return {
      xs: rows.map((r) => dateToX(r.period_start)),
      s: [{ label: "total", values: rows.map((r) => r.avg_bytes), color: "#0b5d7a", points: true }],
    };
  }, [trend.data]);
  return (
    <States l={inst}>
      {(i) => (
        <>
          <h1>
            {i.name} <Badge value={i.status} />
          </h1>
          <p class="muted">
            {i.db_type} {i.version ?? ""} · {i.host}:{i.port}
            {i.credential ? ` · credential ${i.credential.name}` : ""} · last collected{" "}
            {i.last_collected_at ? <Time iso={i.last_collected_at} /> : "never"} · last check{" "}
            {i.last_check ? (
              <span title={i.last_check.message ?? ""}>
                <Badge value={i.last_check.status} /> <Time iso={i.last_check.checked_at} />
              </span>
            ) : (
              "never"
            )}
          </p>
          <p>
            {i.tags.length ? i.tags.map((t) => <span class="tag" title={t.display_name}>{t.name}</span>) : <span class="muted">no tags</span>}
          </p>
          {i.totals && (
            <section class="cards">
              <div class="card">
                <h2>Total size</h2>
                <p class="big">
                  <Bytes n={i.totals.total_size_bytes} />
                </p>
              </div>
              <div class="card">
                <h2>Databases</h2>
                <p class="big">{i.totals.database_count}</p>
              </div>
            </section>
          )}
          <h2>Total trend</h2>
          <States l={trend} empty={(d) => d.items.length === 0} emptyText="No daily aggregates yet (the aggregate job runs daily).">
            {() => <Chart name="instance" xs={series.xs} series={series.s} height={220} />}
          </States>
          <h2>Databases</h2>
          <States l={dbs} empty={(d) => d.items.length === 0} emptyText="No database collected yet.">
            {(d) => (
              <DataTable
                rows={d.items}
                cols={[
                  { label: "Database", cell: (b) => <Link href={`/databases/${b.id}`}>{b.database_name}</Link> },
                  { label: "Size", num: true, cell: (b) => <Bytes n={b.size?.bytes} /> },
                  { label: "Growth", num: true, cell: (b) => formatGrowth(b.growth_bytes_per_day) },
                  { label: "Collected", cell: (b) => <Time iso={b.size?.collected_at} /> },
                ]}
              />
            )}
          </States>
          <h2>Last collection: errors</h2>
          <States l={errors} empty={(d) => d.items.length === 0} emptyText="No error in the last collection.">
            {(d) => (
              <ul>
                {d.items.map((e) => (
                  <li>
                    <Link href={`/runs/${d.run!.run_id}`}>{e.item_key}</Link>: <span class="error-text">{e.error}</span>
                  </li>
                ))}
              </ul>
            )}
          </States>
        </>
      )}
    </States>
  );
}
