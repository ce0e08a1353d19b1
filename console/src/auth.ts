// Sign-in. Local stack: an API token typed in (or handed over in the URL fragment by the start
// banner). AWS: OpenID Connect authorization code with PKCE against the configured issuer.
// The token lives in this tab's sessionStorage only: never a cookie.

export interface ConsoleConfig {
  auth: "token" | "oidc";
  issuer?: string;
  client_id?: string;
  scope?: string;
}

const KEY = "tidemark.token";
const PKCE_KEY = "tidemark.pkce";

export async function loadConfig(): Promise<ConsoleConfig> {
  try {
    const r = await fetch("/config.json", { cache: "no-cache" });
    if (r.ok) return (await r.json()) as ConsoleConfig;
  } catch {
    /* a missing config means the local default */
  }
  return { auth: "token" };
}

export function storedToken(): string | null {
  return sessionStorage.getItem(KEY);
}
export function storeToken(t: string | null) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

/** `#token=...` from the start banner's link: taken once, then removed from the address bar. */
export function tokenFromFragment(hash: string): string | null {
  const m = hash.replace(/^#/, "").split("&").map((kv) => kv.split("=")).find(([k]) => k === "token");
  return m && m[1] ? decodeURIComponent(m[1]) : null;
}

export function base64url(bytes: Uint8Array): string {
  let s = "";
  bytes.forEach((b) => (s += String.fromCharCode(b)));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function randomString(n = 32): string {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return base64url(b);
}

/** RFC 7636 S256: base64url(sha256(verifier)). */
export async function pkceChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
}

async function discover(issuer: string): Promise<Discovery> {
  const r = await fetch(issuer.replace(/\/$/, "") + "/.well-known/openid-configuration");
  if (!r.ok) throw new Error(`OpenID discovery failed: HTTP ${r.status}`);
  return (await r.json()) as Discovery;
}

export function redirectUri(): string {
  return location.origin + "/auth/callback";
}

/** Sends the browser to the issuer's sign-in page. */
export async function startOidc(cfg: ConsoleConfig, returnTo: string): Promise<void> {
  if (!cfg.issuer || !cfg.client_id) throw new Error("config.json lacks issuer or client_id");
  const d = await discover(cfg.issuer);
  const verifier = randomString(48);
  const state = randomString(16);
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, returnTo }));
  const u = new URL(d.authorization_endpoint);
  u.search = new URLSearchParams({
    response_type: "code",
    client_id: cfg.client_id,
    redirect_uri: redirectUri(),
    scope: cfg.scope ?? "openid",
    state,
    code_challenge: await pkceChallenge(verifier),
    code_challenge_method: "S256",
  }).toString();
  location.assign(u.toString());
}

/** On /auth/callback: checks the state, trades the code for tokens, returns where to go. */
export async function finishOidc(cfg: ConsoleConfig, search: string): Promise<string> {
  const q = new URLSearchParams(search);
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) ?? "null") as
    | { verifier: string; state: string; returnTo: string }
    | null;
  sessionStorage.removeItem(PKCE_KEY);
  if (q.get("error")) throw new Error(`sign-in failed: ${q.get("error_description") ?? q.get("error")}`);
  if (!saved || q.get("state") !== saved.state) throw new Error("sign-in failed: state does not match");
  if (!cfg.issuer || !cfg.client_id) throw new Error("config.json lacks issuer or client_id");
  const d = await discover(cfg.issuer);
  const r = await fetch(d.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: q.get("code") ?? "",
      redirect_uri: redirectUri(),
      client_id: cfg.client_id,
      code_verifier: saved.verifier,
    }),
  });
  if (!r.ok) throw new Error(`token exchange failed: HTTP ${r.status}`);
  const tokens = (await r.json()) as { access_token: string };
  storeToken(tokens.access_token);
  return saved.returnTo || "/";
}
