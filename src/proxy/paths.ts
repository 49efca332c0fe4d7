// The proxy's model-routed paths, apart from its routes so the app's middlewares can name them
// before the routes are loaded (src/core-app.ts).

/** POST endpoints routed to a model chosen by the body's `model` field. */
export const MODEL_ROUTED_PATHS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/rerank",
  "/v1/reranking",
  "/v1/responses",
  "/v1/messages",
  "/v1/messages/count_tokens",
  "/completion",
  "/completions",
  "/chat/completions",
  "/embedding",
  "/embeddings",
  "/rerank",
  "/reranking",
  "/infill",
  "/tokenize",
  "/detokenize",
  "/apply-template",
] as const;
