import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { get, setToken, setUnauthorizedHandler, ApiError } from "./api/client";
import type { Me } from "./api/types";
import { finishOidc, loadConfig, startOidc, storedToken, storeToken, tokenFromFragment, type ConsoleConfig } from "./auth";
import { Link, match, navigate, RouteParams, useLocation } from "./router";
import { Session } from "./session";
import { ErrorBox, Field } from "./ui";
import { Overview } from "./pages/overview";
import { Instances, InstancePage } from "./pages/instances";
import { Import } from "./pages/import";
import { Ledger } from "./pages/ledger";
import { DatabasePage } from "./pages/database";
import { Capacity } from "./pages/capacity";
import { Runs, RunPage } from "./pages/runs";
import { Exports } from "./pages/exports";
import { Alerts } from "./pages/alerts";
import { Logs } from "./pages/logs";
import { System } from "./pages/system";
import "./style.css";

const ROUTES: [string, (p: any) => any, string | null][] = [
  ["/", Overview, "Overview"],
  ["/instances", Instances, "Instances"],
  ["/instances/import", Import, null],
  ["/instances/:id", InstancePage, null],
  ["/ledger", Ledger, "Ledger"],
  ["/databases/:id", DatabasePage, null],
  ["/capacity", Capacity, "Capacity"],
  ["/runs", Runs, "Runs"],
  ["/runs/:id", RunPage, null],
  ["/alerts", Alerts, "Alerts"],
  ["/exports", Exports, "Exports"],
  ["/logs", Logs, "Logs"],
  ["/system", System, "System"],
];

function SignIn(props: { config: ConsoleConfig; error: unknown; onToken: (t: string) => void }) {
  const [t, setT] = useState("");
  const [err, setErr] = useState<unknown>(null);
  return (
    <main class="signin">
      <h1>Tidemark</h1>
      <ErrorBox error={props.error ?? err} />
      {props.config.auth === "oidc" ? (
        <button onClick={() => startOidc(props.config, location.pathname + location.search).catch(setErr)}>
          Sign in
        </button>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (t.trim()) props.onToken(t.trim());
          }}
        >
          <Field label="API token">
            <input
              type="password"
              autoComplete="off"
              value={t}
              onInput={(e) => setT((e.target as HTMLInputElement).value)}
              autoFocus
            />
          </Field>
          <p class="muted">The local stack prints its tokens at start (viewer, operator, admin).</p>
          <button type="submit">Sign in</button>
        </form>
      )}
    </main>
  );
}

function Shell(props: { me: Me; signOut: () => void }) {
  const loc = useLocation();
  const [menu, setMenu] = useState(false);
  let page: any = <p class="empty">No such page. <Link href="/">Back to the overview</Link></p>;
  for (const [pattern, Comp] of ROUTES) {
    const params = match(pattern, loc.path);
    if (params) {
      page = (
        <RouteParams.Provider value={params}>
          <Comp key={loc.path} />
        </RouteParams.Provider>
      );
      break;
    }
  }
  const section = "/" + (loc.path.split("/")[1] ?? "");
  // A database page belongs to the ledger's section.
  const active = (href: string) => href === section || (href === "/ledger" && section === "/databases");
  return (
    <Session.Provider value={props.me}>
      <header class="top">
        <Link href="/" class="brand">
          Tidemark
        </Link>
        <button class="menu" aria-expanded={menu} onClick={() => setMenu(!menu)}>
          Menu
        </button>
        <nav class={menu ? "open" : ""} aria-label="main" onClick={() => setMenu(false)}>
          {ROUTES.filter((r) => r[2] && (r[0] !== "/logs" || props.me.role === "admin")).map(([href, , label]) => (
            <Link href={href} aria-current={active(href) ? "page" : undefined}>
              {label}
            </Link>
          ))}
        </nav>
        <span class="who" title={props.me.subject}>
          {props.me.role} · {props.me.timezone}
        </span>
        <button class="link" onClick={props.signOut}>
          Sign out
        </button>
      </header>
      <main id="main">{page}</main>
    </Session.Provider>
  );
}

function App() {
  const [config, setConfig] = useState<ConsoleConfig | null>(null);
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [checking, setChecking] = useState(true);

  const signIn = async (t: string) => {
    setToken(t);
    try {
      const m = await get<Me>("/me");
      storeToken(t);
      setMe(m);
      setError(null);
    } catch (e) {
      setToken(null);
      storeToken(null);
      setMe(null);
      setError(e instanceof ApiError && e.status === 401 ? new Error("That token is not valid.") : e);
    }
  };
  const signOut = () => {
    storeToken(null);
    setToken(null);
    setMe(null);
  };

  useEffect(() => {
    setUnauthorizedHandler(() => {
      storeToken(null);
      setMe(null);
    });
    (async () => {
      const cfg = await loadConfig();
      setConfig(cfg);
      try {
        if (location.pathname === "/auth/callback") {
          const back = await finishOidc(cfg, location.search);
          navigate(back, true);
        }
        const fromHash = tokenFromFragment(location.hash);
        if (fromHash) history.replaceState(null, "", location.pathname + location.search);
        const t = fromHash ?? storedToken();
        if (t) await signIn(t);
      } catch (e) {
        setError(e);
      }
      setChecking(false);
    })();
  }, []);

  if (!config || checking) return <p class="muted">Loading…</p>;
  if (!me) return <SignIn config={config} error={error} onToken={signIn} />;
  return <Shell me={me} signOut={signOut} />;
}

render(<App />, document.getElementById("app")!);
