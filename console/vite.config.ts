import { defineConfig } from "vite";

// Preact through the automatic JSX runtime; the API is proxied in `npm run dev`.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  resolve: { alias: { react: "preact/compat", "react-dom": "preact/compat" } },
  build: { target: "es2022", sourcemap: false },
  server: { proxy: { "/api": process.env.TIDEMARK_API ?? "http://127.0.0.1:3000" } },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
} as any);
