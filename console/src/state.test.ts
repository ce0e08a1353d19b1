import { describe, expect, it } from "vitest";
import { apiQuery, can, formatParams, nextPage, parseParams, prevPage, toggleOne, togglePage, toggleSort, withFilter } from "./state";

describe("URL state", () => {
  it("round-trips repeated tags", () => {
    const p = parseParams("?tag=prod&tag=eu&search=x");
    expect(p).toEqual({ tag: ["prod", "eu"], search: "x" });
    expect(formatParams(p)).toBe("?search=x&tag=prod&tag=eu");
    expect(formatParams({ a: "", tag: [] })).toBe("");
  });
  it("drops the cursor when a filter changes", () => {
    const p = { search: "a", cursor: "c2", prev: ",c1" };
    expect(withFilter(p, "search", "b")).toEqual({ search: "b" });
    expect(withFilter(p, "search", "")).toEqual({});
  });
  it("flips the order on the same column, resets on another", () => {
    let p = toggleSort({}, "size");
    expect(p).toEqual({ sort: "size" });
    p = toggleSort(p, "size");
    expect(p).toEqual({ sort: "size", order: "asc" });
    p = toggleSort(p, "size");
    expect(p.order).toBe("desc");
    expect(toggleSort({ sort: "size", order: "asc", cursor: "x" }, "growth")).toEqual({ sort: "growth" });
  });
  it("walks cursor pages forward and back", () => {
    const p1 = { search: "a" };
    const p2 = nextPage(p1, "c2");
    expect(p2).toEqual({ search: "a", cursor: "c2" });
    const p3 = nextPage(p2, "c3");
    expect(p3.prev).toBe("c2");
    expect(nextPage(p3, "c4").prev).toBe("c2,c3");
    expect(prevPage(p3)).toEqual({ search: "a", cursor: "c2" });
    expect(prevPage(prevPage(p3))).toEqual({ search: "a" });
    expect(apiQuery(p3)).toEqual({ search: "a", cursor: "c3" });
  });
});

describe("selection across pages", () => {
  it("selects a page, then unselects it, keeping other pages", () => {
    let s = new Set([99]);
    s = togglePage(s, [1, 2, 3]);
    expect([...s].sort()).toEqual([1, 2, 3, 99]);
    s = togglePage(s, [1, 2, 3]);
    expect([...s]).toEqual([99]);
    s = toggleOne(s, 99);
    expect(s.size).toBe(0);
  });
});

describe("roles", () => {
  it("ranks viewer < operator < admin", () => {
    expect(can("viewer", "operator")).toBe(false);
    expect(can("operator", "operator")).toBe(true);
    expect(can("admin", "operator")).toBe(true);
    expect(can(undefined, "viewer")).toBe(false);
  });
});
