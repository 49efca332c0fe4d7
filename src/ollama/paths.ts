/**
 * Which paths are Ollama's and how its errors look: what the app's middlewares and error handlers
 * need to know about Ollama's routes, without loading them (src/core-app.ts serves before they are).
 */

/** Every path src/ollama/routes.ts serves; the seed's /api middlewares are kept off them. */
export const OLLAMA_PATHS = [
  "/api/version", "/api/tags", "/api/ps", "/api/show", "/api/chat", "/api/generate", "/api/embed", "/api/embeddings",
  "/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete",
] as const;
const PATH_SET = new Set<string>(OLLAMA_PATHS);
export const isOllamaPath = (path: string): boolean => PATH_SET.has(path) || path.startsWith("/api/blobs/");


/** Ollama's error body: clients read `error` as a string. */
export const ollamaErrorBody = (message: string) => ({ error: message });
