import { describe, expect, it } from "vitest";
import { formatBytes } from "./format";
import { indexShare, qualifiedName, signedBytes } from "./tables";

describe("tables", () => {
  it("names a table with its schema unless the schema is the database", () => {
    expect(qualifiedName({ schema_name: "app", table_name: "orders" }, "shop")).toBe("app.orders");
    expect(qualifiedName({ schema_name: "shop", table_name: "orders" }, "shop")).toBe("orders");
  });
  it("gives the index share in whole percent", () => {
    expect(indexShare({ total_bytes: 400, index_bytes: 300 })).toBe(75);
    expect(indexShare({ total_bytes: 0, index_bytes: 0 })).toBeNull();
  });
  it("signs growth and says when it is unknown", () => {
    expect(signedBytes(2048, formatBytes)).toBe(`+${formatBytes(2048)}`);
    expect(signedBytes(-2048, formatBytes)).toBe(`-${formatBytes(2048)}`);
    expect(signedBytes(null, formatBytes)).toBe("—");
    expect(signedBytes(0, formatBytes)).toBe("0 B");
  });
});
