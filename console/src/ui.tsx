// Shared pieces: data loading with loading/empty/error states, sizes and times, sortable
// headers, keyset pager, polling and actions with a notice.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api/client";
import { exactBytes, formatBytes, formatTime, formatCount } from "./format";
import { useSession } from "./session";
import { nextPage, prevPage, toggleSort, type Params } from "./state";

export interface Loaded<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` whenever `key` changes; keeps the last data while reloading. */
export function useLoad<T>(load: () => Promise<T>, key: string): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: unknown; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, error: null, loading: false }),
      (error) => mine === seq.current && setState({ data: null, error, loading: false }),
    );
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : null;
  return (
    <div class="error" role="alert">
      <strong>{e ? `${e.code}: ` : "Error: "}</strong>
      {(error as Error).message ?? String(error)}
      {e?.requestId && (
        <div class="muted">
          request id <code data-testid="request-id">{e.requestId}</code>
        </div>
      )}
    </div>
  );
}

/** Loading, error or empty, else the children. */
export function States<T>(props: {
  l: Loaded<T>;
  empty?: (d: T) => boolean;
  emptyText?: string;
  children: (d: T) => ComponentChildren;
}) {
  const { l } = props;
  if (l.error) return <ErrorBox error={l.error} />;
  if (l.data === null) return <p class="muted" aria-busy="true">Loading…</p>;
  if (props.empty?.(l.data)) return <p class="empty">{props.emptyText ?? "Nothing here yet."}</p>;
  return <>{props.children(l.data)}</>;
}

export function Bytes({ n }: { n: number | null | undefined }) {
  return (
    <span class="num" title={exactBytes(n)}>
      {formatBytes(n)}
    </span>
  );
}

export function Time({ iso }: { iso: string | null | undefined }) {
  const { timezone } = useSession();
  return (
    <time dateTime={iso ?? undefined} title={iso ? `${iso} (shown in ${timezone})` : undefined}>
      {formatTime(iso, timezone)}
    </time>
  );
}

export function Badge({ value }: { value: string }) {
  return <span class={`badge b-${value}`}>{value.replace(/_/g, " ")}</span>;
}

export function SortTh(props: { col: string; label: string; params: Params; set: (p: Params) => void; num?: boolean }) {
  const active = props.params.sort === props.col;
  const dir = active ? (props.params.order === "asc" ? "ascending" : "descending") : "none";
  return (
    <th aria-sort={dir as any} class={props.num ? "num" : ""}>
      <button class="link" onClick={() => props.set(toggleSort(props.params, props.col))}>
        {props.label}
        {active ? (props.params.order === "asc" ? " ▲" : " ▼") : ""}
      </button>
    </th>
  );
}

export function Pager(props: {
  params: Params;
  set: (p: Params) => void;
  hasNext: boolean;
  nextCursor?: string | null;
  total?: number;
  count: number;
}) {
  const hasPrev = !!props.params.cursor;
  return (
    <nav class="pager" aria-label="pages">
      <button disabled={!hasPrev} onClick={() => props.set(prevPage(props.params))}>
        ← Previous
      </button>
      <span class="muted">
        {props.count} {props.count === 1 ? "row" : "rows"}{props.total !== undefined ? ` of ${formatCount(props.total)}` : ""}
      </span>
      <button
        disabled={!props.hasNext || !props.nextCursor}
        onClick={() => props.nextCursor && props.set(nextPage(props.params, props.nextCursor))}
      >
        Next →
      </button>
    </nav>
  );
}

export function Field(props: { label: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span>{props.label}</span>
      {props.children}
    </label>
  );
}

/** A text input that writes on Enter or blur, so typing does not fire a request per key. */
export function SearchInput(props: { value: string; onCommit: (v: string) => void; label: string; placeholder?: string }) {
  const [v, setV] = useState(props.value);
  useEffect(() => setV(props.value), [props.value]);
  return (
    <Field label={props.label}>
      <input
        type="search"
        value={v}
        placeholder={props.placeholder}
        onInput={(e) => setV((e.target as HTMLInputElement).value)}
        onKeyDown={(e) => e.key === "Enter" && props.onCommit(v)}
        onBlur={() => v !== props.value && props.onCommit(v)}
      />
    </Field>
  );
}

export function Select(props: {
  label: string;
  value: string;
  options: [string, string][];
  onChange: (v: string) => void;
}) {
  return (
    <Field label={props.label}>
      <select value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
        {props.options.map(([v, l]) => (
          <option value={v}>{l}</option>
        ))}
      </select>
    </Field>
  );
}

/** A transient notice after an action (success or the API's error). */
export function useNotice(): [ComponentChildren, (msg: string | null, err?: unknown) => void] {
  const [n, setN] = useState<{ msg: string | null; err?: unknown } | null>(null);
  const node = n ? (
    n.err ? (
      <ErrorBox error={n.err} />
    ) : (
      <p class="notice" role="status">
        {n.msg}
      </p>
    )
  ) : null;
  return [node, (msg, err) => setN(msg === null && !err ? null : { msg, err })];
}

/** Reloads every `ms` while `active`. */
export function usePolling(active: boolean, reload: () => void, ms = 1000) {
  useEffect(() => {
    if (!active) return;
    const t = setInterval(reload, ms);
    return () => clearInterval(t);
  }, [active]);
}

/**
 * A notice and a runner for actions: runs `what`, shows `msg` (or the API's error), then `after`
 * (typically a reload).
 */
export function useAction(): [
  ComponentChildren,
  <R>(what: () => Promise<R>, msg: string | ((r: R) => string), after?: () => void) => Promise<void>,
  (msg: string | null, err?: unknown) => void,
] {
  const [notice, note] = useNotice();
  const act = async <R,>(what: () => Promise<R>, msg: string | ((r: R) => string), after?: () => void) => {
    try {
      const r = await what();
      note(typeof msg === "function" ? msg(r) : msg);
      after?.();
    } catch (x) {
      note(null, x);
    }
  };
  return [notice, act, note];
}
