import { defineConfig } from 'vite';

// `npm run dev` serves the client with hot reload and forwards the APIs to a running
// `confab up` (CONFAB_URL, default http://127.0.0.1:3000). `npm run build` writes dist/,
// which `confab up` serves.
const target = process.env.CONFAB_URL ?? 'http://127.0.0.1:3000';

export default defineConfig({
  server: {
    proxy: {
      '/api': { target, changeOrigin: false },
      '/chat': { target, changeOrigin: false },
      '/openapi.json': { target, changeOrigin: false },
    },
  },
  build: {
    outDir: 'dist',
    sourcemap: true,
    // Two pages: the client, and the API reference at /docs/ (Swagger UI, bundled here so
    // the page needs no CDN).
    rollupOptions: { input: { main: 'index.html', docs: 'docs/index.html' } },
  },
});
