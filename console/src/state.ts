// URL state: every page keeps its filters, sort and cursor in the query string so a link
// shares the view. Pure helpers, unit tested.

export type Params = Record<string, string | string[]>;

/** `?a=1&tag=x&tag=y` -> {a: "1", tag: ["x", "y"]}; `multi` names keep arrays. */
export function parseParams(search: string, multi: string[] = ["tag"]): Params {
  const out: Params = {};
  const sp = new URLSearchParams(search);
  for (const [k, v] of sp) {
    if (multi.includes(k)) out[k] = [...((out[k] as string[]) ?? []), v];
    else out[k] = v;
  }
  return out;
}

/** The query string of params, without empty values, in a stable order. */
export function formatParams(p: Params): string {
  const sp = new URLSearchParams();
  for (const k of Object.keys(p).sort()) {
    const v = p[k];
    if (Array.isArray(v)) v.filter((x) => x !== "").forEach((x) => sp.append(k, x));
    else if (v !== undefined && v !== null && v !== "") sp.append(k, v);
  }
  const s = sp.toString();
  return s ? `?${s}` : "";
}

/** A change of filters or sort starts again from the first page (the cursor belongs to the
 * old order); following a page keeps the rest. */
export function withFilter(p: Params, key: string, value: string | string[] | undefined): Params {
  const next: Params = { ...p };
  delete next.cursor;
  delete next.prev;
  if (value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) delete next[key];
  else next[key] = value;
  return next;
}

/** Clicking a column: the same column flips the order, another one starts with its default. */
export function toggleSort(p: Params, column: string): Params {
  const same = p.sort === column;
  const order = same ? (p.order === "asc" ? "desc" : "asc") : "";
  const next = withFilter(p, "sort", column);
  if (order) next.order = order;
  else delete next.order;
  return next;
}

/** Next page: the cursor goes into the URL and the current one onto a back stack
 * (comma-separated in `prev`; an empty stack means the previous page is the first). */
export function nextPage(p: Params, cursor: string): Params {
  const stack = p.prev ? String(p.prev).split(",") : [];
  if (p.cursor) stack.push(String(p.cursor));
  const next: Params = { ...p, cursor };
  if (stack.length) next.prev = stack.join(",");
  else delete next.prev;
  return next;
}
export function prevPage(p: Params): Params {
  const stack = p.prev ? String(p.prev).split(",") : [];
  const back = stack.pop();
  const next: Params = { ...p };
  if (back) next.cursor = back;
  else delete next.cursor;
  if (stack.length) next.prev = stack.join(",");
  else delete next.prev;
  return next;
}

/** Query for the API: the URL's params minus what only the console uses. */
export function apiQuery(p: Params, drop: string[] = ["prev"]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(p)) if (!drop.includes(k)) out[k] = v;
  return out;
}

/** Selection that survives paging: ids picked on any page; "select page" adds or removes all
 * ids of the page. */
export function togglePage(selected: Set<number>, pageIds: number[]): Set<number> {
  const next = new Set(selected);
  const all = pageIds.length > 0 && pageIds.every((id) => next.has(id));
  for (const id of pageIds) {
    if (all) next.delete(id);
    else next.add(id);
  }
  return next;
}
export function toggleOne(selected: Set<number>, id: number): Set<number> {
  const next = new Set(selected);
  if (next.has(id)) next.delete(id);
  else next.add(id);
  return next;
}

export type RoleName = "viewer" | "operator" | "admin";
const RANK: Record<RoleName, number> = { viewer: 0, operator: 1, admin: 2 };
/** Whether `role` may do what needs `needed` (viewer < operator < admin). */
export function can(role: RoleName | undefined, needed: RoleName): boolean {
  return role !== undefined && RANK[role] >= RANK[needed];
}
