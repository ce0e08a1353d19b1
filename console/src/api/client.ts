// The one way the console talks to /api/v1: bearer token, the contract's envelopes, and an
// error that carries the API's message and request id.
import type { paths } from "./schema";

export type Paths = paths;
/** The query parameters the contract declares for a GET path. */
export type QueryOf<P extends keyof paths> = paths[P] extends { get: { parameters: { query?: infer Q } } }
  ? NonNullable<Q>
  : never;

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public requestId: string | null,
    public field?: string,
    public details?: unknown,
  ) {
    super(message);
  }
}

export interface Page<T> {
  items: T[];
  page?: number | null;
  limit: number;
  has_next: boolean;
  next_cursor?: string | null;
  total?: number;
}

let token: string | null = null;
let onUnauthorized: () => void = () => {};

export function setToken(t: string | null) {
  token = t;
}
export function getToken() {
  return token;
}
export function setUnauthorizedHandler(f: () => void) {
  onUnauthorized = f;
}

/** `?a=1&tag=x&tag=y` from a plain object; empty values are left out. */
export function toQuery(q: Record<string, unknown> | undefined): string {
  if (!q) return "";
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => sp.append(k, String(x)));
    else sp.append(k, String(v));
  }
  const s = sp.toString();
  return s ? `?${s}` : "";
}

export async function request<T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = contentType;
  const payload = body === undefined ? undefined : contentType === "application/json" ? JSON.stringify(body) : String(body);
  let resp: Response;
  try {
    resp = await fetch(API + path, { method, headers, body: payload });
  } catch (e) {
    throw new ApiError(0, "NETWORK", `the API did not answer (${(e as Error).message})`, null);
  }
  const requestId = resp.headers.get("x-request-id");
  const text = await resp.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: reported below */
  }
  if (!resp.ok || !json || json.success !== true) throw failure(resp, json, requestId);
  return json.data as T;
}

/** The error of a failed response, from its envelope when it has one. */
function failure(resp: Response, json: any, requestId: string | null): ApiError {
  const err = json?.error;
  if (resp.status === 401) onUnauthorized();
  return new ApiError(
    resp.status,
    err?.code ?? "HTTP_" + resp.status,
    err?.message ?? `HTTP ${resp.status}`,
    err?.request_id ?? requestId,
    err?.field,
    err?.details,
  );
}

/** GETs a file (no JSON envelope) with the token, which a plain link could not send. */
export async function getFile(path: string): Promise<Blob> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let resp: Response;
  try {
    resp = await fetch(API + path, { headers });
  } catch (e) {
    throw new ApiError(0, "NETWORK", `the API did not answer (${(e as Error).message})`, null);
  }
  if (resp.ok) return resp.blob();
  const text = await resp.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON: the status alone */
  }
  throw failure(resp, json, resp.headers.get("x-request-id"));
}

/** Saves a blob as a file through a temporary link. */
export function saveFile(blob: Blob, name: string) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function get<T>(path: string, query?: Record<string, unknown>): Promise<T> {
  return request<T>("GET", path + toQuery(query));
}
export const post = <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {});
/** POSTs a text body (a CSV file) as `contentType`. */
export const postText = <T>(path: string, text: string, contentType: string) => request<T>("POST", path, text, contentType);
export const patch = <T>(path: string, body: unknown) => request<T>("PATCH", path, body);
export const del = <T>(path: string, query?: Record<string, unknown>) => request<T>("DELETE", path + toQuery(query));
