// Who is signed in: role and business time zone from GET /me.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Me } from "./api/types";
import { can, type RoleName } from "./state";

export const Session = createContext<Me>({ subject: "", role: "viewer", timezone: "UTC" });
export const useSession = () => useContext(Session);
export function useCan(needed: RoleName): boolean {
  return can(useSession().role, needed);
}
