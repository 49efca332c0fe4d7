import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { codeForStatus, ERRORS, ApiError, type ErrorCode } from "../../src/http/errors";
import { openAiErrorBody, sseErrorEvent } from "../../src/http/openai";
import { jsonRequest, makeTestServices, type TestContext } from "../helpers/services";

// The error catalogue (src/http/errors.ts): one table, one OpenAI builder, one SSE builder.

describe("the error catalogue", () => {
  test("every code has a 4xx/5xx status, an OpenAI type and a snake_case OpenAI code", () => {
    for (const [code, e] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^[A-Z_]+$/);
      expect(e.status).toBeGreaterThanOrEqual(400);
      expect(e.status).toBeLessThan(600);
      expect(e.openAiType).toMatch(/^[a-z_]+$/);
      expect(e.openAiCode).toMatch(/^[a-z_]+$/);
    }
  });

  test("the seed API's six codes keep their statuses", () => {
    expect(Object.fromEntries((["VALIDATION_ERROR", "NOT_FOUND", "CONFLICT", "RATE_LIMITED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE"] as ErrorCode[]).map((c) => [c, ERRORS[c].status]))).toEqual({
      VALIDATION_ERROR: 400, NOT_FOUND: 404, CONFLICT: 409, RATE_LIMITED: 429, INTERNAL_ERROR: 500, SERVICE_UNAVAILABLE: 503,
    });
  });

  test.each([
    [400, "VALIDATION_ERROR"], [401, "UNAUTHORIZED"], [403, "FORBIDDEN"], [404, "NOT_FOUND"], [413, "PAYLOAD_TOO_LARGE"],
    [429, "RATE_LIMITED"], [503, "SERVICE_UNAVAILABLE"], [418, undefined],
  ])("status %d reads as %s", (status, code) => {
    expect(codeForStatus(status)).toBe(code as ErrorCode | undefined);
  });

  test("one OpenAI body: OpenAI's ErrorObject fields, the details after the message, a string code", () => {
    expect(openAiErrorBody(new ApiError("RATE_LIMITED", "Queue full", "Try again in 5 s"))).toEqual({
      error: { message: "Queue full: Try again in 5 s", type: "rate_limit_exceeded", param: null, code: "rate_limit_exceeded" },
    });
  });

  test("the SSE error event carries the same body as one data: event", () => {
    const err = new ApiError("SERVICE_UNAVAILABLE", "The model could not be started", "exit code 1");
    const event = sseErrorEvent(err);
    expect(event.startsWith("data: ")).toBe(true);
    expect(event.endsWith("\n\n")).toBe(true);
    expect(JSON.parse(event.slice(6))).toEqual(openAiErrorBody(err));
  });
});

describe("every /v1 path answers from the catalogue", () => {
  let t: TestContext;
  beforeAll(() => {
    t = makeTestServices();
  });
  afterAll(() => t.cleanup());

  test("an unknown model has one code whichever route says so", async () => {
    const chat = await t.app.request("/v1/chat/completions", jsonRequest("POST", { model: "nope", messages: [] }));
    const get = await t.app.request("/v1/models/nope");
    const upstream = await t.app.request("/upstream/nope/props");
    for (const res of [chat, get, upstream]) {
      expect(res.status).toBe(404);
      expect((await res.json()).error).toMatchObject({ type: "invalid_request_error", param: null, code: "model_not_found" });
    }
  });

  test("an unknown endpoint, a malformed body and a missing model each get their catalogue code", async () => {
    const unknown = await t.app.request("/v1/nothing-here");
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.code).toBe("not_found");
    const malformed = await t.app.request("/v1/chat/completions", jsonRequest("POST", "[1,2]"));
    expect(malformed.status).toBe(400);
    expect((await malformed.json()).error).toMatchObject({ type: "invalid_request_error", code: "validation_error" });
  });

  test("an oversized body is a 413 on /api as on /v1", async () => {
    const small = makeTestServices({ proxy: { maxBodyBytes: 1024 } });
    try {
      const big = "x".repeat(2 * 1024 * 1024);
      const api = await small.app.request("/api/models", jsonRequest("POST", { models: [{ path: big }] }));
      expect(api.status).toBe(413);
      expect((await api.json()).error.code).toBe("PAYLOAD_TOO_LARGE");
      const v1 = await small.app.request("/v1/chat/completions", jsonRequest("POST", { model: "m", pad: big }));
      expect(v1.status).toBe(413);
      expect((await v1.json()).error.code).toBe("request_too_large");
    } finally {
      await small.cleanup();
    }
  });
});
