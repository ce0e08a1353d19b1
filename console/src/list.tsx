// Shared list pieces: a table described by its columns, a paged table with its pager, the hook
// that loads a list page from the URL's query, and the filter controls that write one query
// parameter each.
import type { ComponentChildren, Ref } from "preact";
import { get, type Page } from "./api/client";
import { formatBytes, parseBytes } from "./format";
import { apiQuery, withFilter, type Params } from "./state";
import { Link, useParams } from "./router";
import { Pager, SearchInput, Select, SortTh, States, Time, useLoad, type Loaded } from "./ui";

/** One column: its header (a label, sortable when `sort` names the API column) and its cell. */
export interface Col<T> {
  label?: string;
  head?: ComponentChildren;
  sort?: string;
  num?: boolean;
  class?: string;
  title?: (r: T) => string;
  cell: (r: T) => ComponentChildren;
}

/** Columns may be switched off with `cond && {…}`. */
export type Cols<T> = (Col<T> | false | null | undefined | "")[];

export interface TableProps<T> {
  rows: T[];
  cols: Cols<T>;
  params?: Params;
  set?: (p: Params) => void;
  testid?: string;
  tableRef?: Ref<HTMLTableElement>;
}

export function DataTable<T>(props: TableProps<T>) {
  const cols = props.cols.filter(Boolean) as Col<T>[];
  return (
    <table ref={props.tableRef} data-testid={props.testid}>
      <thead>
        <tr>
          {cols.map((c) =>
            c.sort && props.params && props.set ? (
              <SortTh col={c.sort} label={c.label ?? ""} params={props.params} set={props.set} num={c.num} />
            ) : (
              <th class={c.num ? "num" : undefined}>{c.head ?? c.label}</th>
            ),
          )}
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => (
          <tr>
            {cols.map((c) => (
              <td class={c.num ? "num" : c.class} title={c.title?.(r)}>
                {c.cell(r)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type PagedProps<T> = Omit<TableProps<T>, "rows" | "params" | "set"> & {
  params: Params;
  set: (p: Params) => void;
  /** Sort headers read these params (the page's default sort filled in); the pager the real ones. */
  sortParams?: Params;
  total?: boolean;
  scroll?: boolean;
};

/** A page of rows, its table (in a scroll box when `scroll`) and the keyset pager under it. */
export function PagedTable<T>(props: PagedProps<T> & { page: Page<T> }) {
  const d = props.page;
  const table = (
    <DataTable rows={d.items} cols={props.cols} params={props.sortParams ?? props.params} set={props.set} testid={props.testid} tableRef={props.tableRef} />
  );
  return (
    <>
      {props.scroll ? <div class="scroll">{table}</div> : table}
      <Pager
        params={props.params}
        set={props.set}
        hasNext={d.has_next}
        nextCursor={d.next_cursor}
        total={props.total ? d.total : undefined}
        count={d.items.length}
      />
    </>
  );
}

/** A list page's query parameters, their setter and the page they load. */
export interface List<T> extends Query {
  l: Loaded<Page<T>>;
}

/** Loads the page of `path` the URL's query asks for (over `base`), again when it changes. */
export function usePagedList<T>(path: string, base: Record<string, unknown> = {}, multi?: string[]): List<T> {
  const [params, set] = useParams(multi);
  const q = apiQuery(params);
  const l = useLoad(() => get<Page<T>>(path, { ...base, ...q }), path + JSON.stringify(q));
  return { params, set, l };
}

/** A list's page: loading, error or `emptyText`, else its paged table. */
export function PagedList<T>(props: Omit<PagedProps<T>, "params" | "set"> & { list: List<T>; emptyText: string }) {
  const { list, emptyText, ...rest } = props;
  return (
    <States l={list.l} empty={noItems} emptyText={emptyText}>
      {(d) => <PagedTable page={d} params={list.params} set={list.set} {...rest} />}
    </States>
  );
}

export const noItems = (d: { items: unknown[] }) => d.items.length === 0;

/** The query parameter `k` as a form value. */
export const param = (p: Params, k: string) => (p[k] === undefined ? "" : String(p[k]));

/** The URL's query parameters and their setter, as `useParams` gives them. */
export interface Query {
  params: Params;
  set: (p: Params) => void;
}

interface FilterProps {
  at: Query;
}

/** A select bound to the query parameter `k`. */
export function FilterSelect(props: FilterProps & { k: string; label: string; options: [string, string][] }) {
  return (
    <Select
      label={props.label}
      value={param(props.at.params, props.k)}
      options={props.options}
      onChange={(v) => props.at.set(withFilter(props.at.params, props.k, v))}
    />
  );
}

/** A bar of selects, each `[label, parameter, options]`, then any other filters. */
export function FilterBar(props: FilterProps & { selects: [string, string, [string, string][]][]; children?: ComponentChildren }) {
  return (
    <div class="filters">
      {props.selects.map(([label, k, options]) => (
        <FilterSelect label={label} k={k} options={options} at={props.at} />
      ))}
      {props.children}
    </div>
  );
}

/** A search box bound to the query parameter `k`. */
export function FilterSearch(props: FilterProps & { k: string; label: string; placeholder?: string }) {
  return (
    <SearchInput
      label={props.label}
      placeholder={props.placeholder}
      value={param(props.at.params, props.k)}
      onCommit={(v) => props.at.set(withFilter(props.at.params, props.k, v))}
    />
  );
}

/** A size typed as "1 GB", kept in `k` as bytes (an unparsable entry is passed on as typed). */
export function BytesFilter(props: FilterProps & { k: string; label: string; placeholder: string }) {
  const v = props.at.params[props.k];
  return (
    <SearchInput
      label={props.label}
      placeholder={props.placeholder}
      value={v ? formatBytes(Number(v)) : ""}
      onCommit={(t) => props.at.set(withFilter(props.at.params, props.k, t ? String(parseBytes(t) ?? t) : ""))}
    />
  );
}

const ENGINES: [string, string][] = [["", "any"], ["postgresql", "PostgreSQL"], ["mysql", "MySQL/MariaDB"]];
const ROWS: [string, string][] = [["", "20"], ["50", "50"], ["100", "100"], ["200", "200"]];

/** Engine, tags (comma separated) and how they match: the inventory filters of ledger and instances. */
export function InventoryFilters(props: FilterProps & { children?: ComponentChildren }) {
  const { params, set } = props.at;
  const tags = Array.isArray(params.tag) ? params.tag : params.tag ? [params.tag] : [];
  return (
    <>
      <FilterSearch label="Search" k="search" at={props.at} />
      <FilterSelect label="Engine" k="db_type" options={ENGINES} at={props.at} />
      {props.children}
      <SearchInput
        label="Tags"
        placeholder="prod, eu"
        value={tags.join(", ")}
        onCommit={(v) => set(withFilter(params, "tag", v.split(",").map((s) => s.trim()).filter(Boolean)))}
      />
      <FilterSelect label="Tag match" k="tag_mode" options={[["", "any"], ["all", "all"]]} at={props.at} />
    </>
  );
}

export function RowsFilter(props: FilterProps) {
  return <FilterSelect label="Rows" k="limit" options={ROWS} at={props.at} />;
}

interface InstanceRow {
  id: number;
  name: string;
  db_type: string;
  host: string;
  port: number;
  last_collected_at?: string | null;
}

/** Name, engine, address and last collection of an instance: the instances list and the stale ones. */
export const INSTANCE_COLS: [Col<InstanceRow>, Col<InstanceRow>, Col<InstanceRow>, Col<InstanceRow>] = [
  { label: "Instance", cell: (i) => <Link href={`/instances/${i.id}`}>{i.name}</Link> },
  { label: "Engine", cell: (i) => i.db_type },
  {
    label: "Address",
    cell: (i) => (
      <>
        {i.host}:{i.port}
      </>
    ),
  },
  { label: "Last collected", cell: (i) => (i.last_collected_at ? <Time iso={i.last_collected_at} /> : "never") },
];
