import { describe, expect, it } from "vitest";
import { base64url, pkceChallenge, tokenFromFragment } from "./auth";

describe("sign-in helpers", () => {
  it("takes the token from the banner's fragment", () => {
    expect(tokenFromFragment("#token=abc_DEF-123")).toBe("abc_DEF-123");
    expect(tokenFromFragment("#x=1&token=t%2Bz")).toBe("t+z");
    expect(tokenFromFragment("")).toBeNull();
    expect(tokenFromFragment("#token=")).toBeNull();
  });
  it("encodes base64url without padding", () => {
    expect(base64url(new Uint8Array([251, 255, 191]))).toBe("-_-_");
    expect(base64url(new Uint8Array([1]))).toBe("AQ");
  });
  it("computes the RFC 7636 S256 challenge", async () => {
    // Reference value from Python: base64.urlsafe_b64encode(sha256(verifier)).rstrip("=").
    expect(await pkceChallenge("dBjftJeZ4CVP-mB92K1uhbHNwTlQK2uU4_Wk8LoVqkE")).toBe(
      "9LhVOY4r09LQ64YpdDFFbWVEO1H5YpKdFI3ccYY10dU",
    );
  });
});
