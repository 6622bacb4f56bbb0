// Typed helpers for calling the govit services from a browser over gRPC-Web.
//
//   const transport = createGovitTransport({ baseUrl: "https://projects.govit.example", token });
//   const projects = createClient(ProjectService, transport);
//   try { await projects.getProject({ name: "projects/2026-0007" }); }
//   catch (e) { if (errorInfo(e)?.reason === "NOT_FOUND") … }
//
// Every govit error carries a google.rpc.ErrorInfo (domain "govit", a stable reason: branch on
// it, never on the message); INVALID_ARGUMENT carries google.rpc.BadRequest field violations
// named as sent (`project.contacts[1].phone`). See docs/api.md.

import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";

import {
  BadRequestSchema,
  ErrorInfoSchema,
  LocalizedMessageSchema,
  PreconditionFailureSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb";
import { ProjectService, PublicNoticeService } from "./gen/govit/projects/v1/projects_pb";
import { ExpertRegistryService } from "./gen/govit/experts/v1/experts_pb";
import { ReviewSchedulingService } from "./gen/govit/scheduling/v1/scheduling_pb";

export { ConnectError, Code, createClient } from "@connectrpc/connect";
export type { Client, Transport } from "@connectrpc/connect";

// The services' descriptors, for createClient(ProjectService, transport). PublicNoticeService
// (the published notices) is served by the projects listener and takes no token.
export { ProjectService, PublicNoticeService, ExpertRegistryService, ReviewSchedulingService };

// Every generated message, enum and schema, by package.
export * as projects from "./gen/govit/projects/v1/projects_pb";
export * as experts from "./gen/govit/experts/v1/experts_pb";
export * as scheduling from "./gen/govit/scheduling/v1/scheduling_pb";
export * as common from "./gen/govit/common/v1/common_pb";
export * as rpc from "./gen/google/rpc/error_details_pb";
export type { Date as ProtoDate } from "./gen/google/type/date_pb";

/** A bearer token, or a function returning the current one (called before every request). */
export type TokenSource = string | (() => string | Promise<string>);

export interface GovitTransportOptions {
  /** The service's base URL, e.g. "http://127.0.0.1:50051" (one port per service). */
  baseUrl: string;
  /** Sent as `authorization: Bearer <token>`; omit only for health checks and PublicNoticeService. */
  token?: TokenSource;
  /** Sent as `accept-language` (e.g. "zh-CN", "en"); a CORS-safelisted header. */
  language?: string;
  /** More interceptors, run after the authorization one. */
  interceptors?: Interceptor[];
  /** A fetch implementation (defaults to globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
}

/** Sets `authorization` and `accept-language` on every request (unary and streaming). */
export function authInterceptor(token?: TokenSource, language?: string): Interceptor {
  return (next) => async (req) => {
    if (token !== undefined) {
      const value = typeof token === "function" ? await token() : token;
      if (value) req.header.set("authorization", `Bearer ${value}`);
    }
    if (language) req.header.set("accept-language", language);
    return next(req);
  };
}

/** A gRPC-Web transport (binary protobuf) to one govit service. */
export function createGovitTransport(options: GovitTransportOptions): Transport {
  return createGrpcWebTransport({
    baseUrl: options.baseUrl,
    useBinaryFormat: true,
    interceptors: [authInterceptor(options.token, options.language), ...(options.interceptors ?? [])],
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

export interface GovitEndpoints {
  projects: string;
  experts: string;
  scheduling: string;
}

export interface GovitClients {
  projects: Client<typeof ProjectService>;
  experts: Client<typeof ExpertRegistryService>;
  scheduling: Client<typeof ReviewSchedulingService>;
}

/** Clients of all three services with one token and language. */
export function createGovitClients(
  endpoints: GovitEndpoints,
  options: Omit<GovitTransportOptions, "baseUrl"> = {},
): GovitClients {
  const client = <S extends DescService>(service: S, baseUrl: string) =>
    createClient(service, createGovitTransport({ ...options, baseUrl }));
  return {
    projects: client(ProjectService, endpoints.projects),
    experts: client(ExpertRegistryService, endpoints.experts),
    scheduling: client(ReviewSchedulingService, endpoints.scheduling),
  };
}

function asConnectError(err: unknown): ConnectError | undefined {
  // ConnectError.from would wrap anything; only a real ConnectError carries details.
  return err instanceof ConnectError ? err : undefined;
}

export interface GovitErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

/** The google.rpc.ErrorInfo of a ConnectError, if it carries one. */
export function errorInfo(err: unknown): GovitErrorInfo | undefined {
  const info = asConnectError(err)?.findDetails(ErrorInfoSchema)[0];
  if (!info) return undefined;
  return { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } };
}

export interface GovitLocalizedMessage {
  locale: string;
  message: string;
}

/** The google.rpc.LocalizedMessage of a ConnectError, if it carries one. */
export function localizedMessage(err: unknown): GovitLocalizedMessage | undefined {
  const m = asConnectError(err)?.findDetails(LocalizedMessageSchema)[0];
  return m ? { locale: m.locale, message: m.message } : undefined;
}

export interface GovitFieldViolation {
  field: string;
  description: string;
  /** Stable, e.g. REQUIRED, TOO_LONG, INVALID_PHONE_NUMBER (docs/api.md). */
  reason: string;
  /** For people, in the language the request's accept-language chose. */
  localizedMessage?: string;
}

/** The google.rpc.BadRequest field violations of a ConnectError (empty if none). */
export function fieldViolations(err: unknown): GovitFieldViolation[] {
  const e = asConnectError(err);
  if (!e) return [];
  return e
    .findDetails(BadRequestSchema)
    .flatMap((b) => b.fieldViolations)
    .map((v) => ({
      field: v.field,
      description: v.description,
      reason: v.reason,
      localizedMessage: v.localizedMessage?.message,
    }));
}

/** The google.rpc.PreconditionFailure violations (FAILED_PRECONDITION; type is the reason). */
export function preconditionViolations(err: unknown): { type: string; subject: string; description: string }[] {
  const e = asConnectError(err);
  if (!e) return [];
  return e
    .findDetails(PreconditionFailureSchema)
    .flatMap((p) => p.violations)
    .map((v) => ({ type: v.type, subject: v.subject, description: v.description }));
}

/** The google.rpc.ResourceInfo (NOT_FOUND, ALREADY_EXISTS), if any. */
export function resourceInfo(err: unknown): { resourceType: string; resourceName: string; description: string } | undefined {
  const r = asConnectError(err)?.findDetails(ResourceInfoSchema)[0];
  return r ? { resourceType: r.resourceType, resourceName: r.resourceName, description: r.description } : undefined;
}

/** How long to wait before retrying (RESOURCE_EXHAUSTED / RATE_LIMITED), in milliseconds. */
export function retryDelayMs(err: unknown): number | undefined {
  const d = asConnectError(err)?.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : undefined;
}

/** A fresh AIP-155 request id: send it with a create or record call, and the same one when
 *  resending that call, so a retry after a lost reply never applies it twice. */
export function newRequestId(): string {
  return crypto.randomUUID();
}

/** Lowercase hex SHA-256, as FinishUpload wants it (Web Crypto: needs a secure context or
 *  localhost). */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

export interface UploadOptions {
  /** Bytes per AppendUpload; at most 1 MiB (the server's limit). */
  chunkSize?: number;
  /** Called after each chunk with the bytes the server has. */
  onProgress?: (receivedBytes: number, totalBytes: number) => void;
  /** How many times one chunk is retried after a transient failure (UNAVAILABLE, a cut connection). */
  retries?: number;
  signal?: AbortSignal;
}

type ProjectsClient = Client<typeof ProjectService>;
type DocumentUploadInit = Parameters<ProjectsClient["startUpload"]>[0]["metadata"];

const TRANSIENT = new Set([Code.Unavailable, Code.Unknown, Code.DeadlineExceeded, Code.Aborted]);

/**
 * Uploads a document with the resumable upload (StartUpload, AppendUpload, FinishUpload), the
 * way a browser can: gRPC-Web carries no client stream. A chunk whose reply was lost is sent
 * again at the same offset (the server ignores bytes it has); after UPLOAD_OFFSET_MISMATCH it
 * continues where the server says. Returns the document.
 */
export async function uploadDocument(
  projects: ProjectsClient,
  metadata: NonNullable<DocumentUploadInit>,
  content: Uint8Array,
  options: UploadOptions = {},
) {
  const chunkSize = Math.min(options.chunkSize ?? 1024 * 1024, 1024 * 1024);
  const retries = options.retries ?? 5;
  const call = { signal: options.signal };
  const sha256 = await sha256Hex(content);
  const upload = await withRetries(retries, () =>
    projects.startUpload({ metadata: { requestId: newRequestId(), ...metadata } }, call),
  );
  let offset = 0;
  while (offset < content.length) {
    const chunk = content.subarray(offset, offset + chunkSize);
    try {
      const after = await withRetries(retries, () =>
        projects.appendUpload({ name: upload.name, offset: BigInt(offset), data: chunk }, call),
      );
      offset = Number(after.receivedBytes);
    } catch (err) {
      const info = errorInfo(err);
      if (info?.reason !== "UPLOAD_OFFSET_MISMATCH") throw err;
      offset = Number(info.metadata.received_bytes);
    }
    options.onProgress?.(offset, content.length);
  }
  return withRetries(retries, () => projects.finishUpload({ name: upload.name, sha256 }, call));
}

async function withRetries<T>(retries: number, attempt: () => Promise<T>): Promise<T> {
  for (let tried = 0; ; tried++) {
    try {
      return await attempt();
    } catch (err) {
      const e = asConnectError(err);
      if (!e || !TRANSIENT.has(e.code) || tried >= retries) throw err;
      await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** tried, 5_000)));
    }
  }
}
