// A small history-API router: paths without a hash, each page's state in the query string.
import { createContext } from "preact";
import type { ComponentChildren, JSX } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import { formatParams, parseParams, type Params } from "./state";

export interface Loc {
  path: string;
  search: string;
}

const listeners = new Set<() => void>();
function current(): Loc {
  return { path: location.pathname, search: location.search };
}
export function navigate(to: string, replace = false) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  listeners.forEach((l) => l());
}
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

export function useLocation(): Loc {
  const [loc, setLoc] = useState(current());
  useEffect(() => {
    const l = () => setLoc(current());
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return loc;
}

/** The page's URL state and a setter that writes it back to the URL. */
export function useParams(multi?: string[]): [Params, (p: Params, replace?: boolean) => void] {
  const loc = useLocation();
  const params = parseParams(loc.search, multi);
  return [params, (p, replace) => navigate(loc.path + formatParams(p), replace)];
}

/** `/databases/{id}` against `/databases/12` -> {id: "12"}. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const a = pattern.split("/").filter(Boolean);
  const b = path.split("/").filter(Boolean);
  if (a.length !== b.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(":")) out[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return out;
}

export function Link(props: { href: string; children: ComponentChildren } & JSX.HTMLAttributes<HTMLAnchorElement>) {
  const { href, children, ...rest } = props;
  return (
    <a
      {...rest}
      href={href}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

export const RouteParams = createContext<Record<string, string>>({});
export const useRouteParams = () => useContext(RouteParams);
