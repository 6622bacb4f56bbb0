// Runs in the browser (bundled by esbuild into dist/page.js). The page is served from its own
// origin, so every call to the services is a cross-origin gRPC-Web call that CORS must allow.
//
// Each case is an async function that calls the services and returns a plain JSON-safe record
// of what it saw; test/browser.test.mjs runs the cases one by one (in order, through
// window.govitTest.run) and asserts on the records. To add a case: add it to `cases` below and
// add its assertions to the `cases` list in browser.test.mjs under the same name.

import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createGovitClients,
  errorInfo,
  fieldViolations,
  localizedMessage,
  newRequestId,
  preconditionViolations,
  sha256Hex,
  uploadDocument,
  resourceInfo,
  common,
  experts as epb,
  projects as ppb,
  scheduling as spb,
  type GovitClients,
  type GovitEndpoints,
} from "../src/index";

/** What node hands the page: where the services are and development tokens per role. */
export interface Context {
  endpoints: GovitEndpoints;
  /** Tokens minted with `govit token`, by role: office, applicant, registry_admin, service, … */
  tokens: Record<string, string>;
  /** The credit code the applicant token was minted for (--org). */
  applicantOrg: string;
  /** Unique per run, for ids. */
  runId: string;
  /** The accept-language the clients send. */
  language: string;
}

/** State carried from one case to the next (e.g. the project the unary case created). */
type Shared = Record<string, string | undefined>;
type Result = Record<string, unknown>;
type Case = (ctx: Context, shared: Shared) => Promise<Result>;

function clients(ctx: Context, role: string | undefined): GovitClients {
  const token = role === undefined ? undefined : ctx.tokens[role];
  if (role !== undefined && !token) throw new Error(`no token for role ${role}`);
  // The token as an async function: the interceptor must await it.
  return createGovitClients(ctx.endpoints, {
    token: token === undefined ? undefined : async () => token,
    language: ctx.language,
  });
}

/** Everything a web team needs from an error, as plain data. */
function describeError(err: unknown): Result {
  if (!(err instanceof ConnectError)) {
    return { notConnectError: String(err) };
  }
  return {
    code: Code[err.code],
    rawMessage: err.rawMessage,
    errorInfo: errorInfo(err) ?? null,
    fieldViolations: fieldViolations(err),
    localizedMessage: localizedMessage(err) ?? null,
    resourceInfo: resourceInfo(err) ?? null,
    preconditionViolations: preconditionViolations(err),
    detailTypes: err.details.map((d) => ("type" in d ? d.type : d.desc.typeName)),
    requestId: err.metadata.get("x-request-id"),
  };
}

async function expectError(call: () => Promise<unknown>): Promise<Result> {
  try {
    const value = await call();
    return { unexpectedSuccess: JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) };
  } catch (err) {
    return describeError(err);
  }
}

// GB 32100-2015 check character, as crates/govit-platform/src/uscc.rs.
const USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
export function creditCode(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += USCC_WEIGHTS[i]! * USCC_ALPHABET.indexOf(first17[i]!);
  return first17 + USCC_ALPHABET[(31 - (sum % 31)) % 31];
}

// GB 11643 check character, as crates/govit-platform/src/resident_id.rs.
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
export function residentId(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += ID_WEIGHTS[i]! * Number(first17[i]);
  return first17 + "10X98765432"[sum % 11];
}

const INVESTMENT_FEN = 1_234_567_890_123n; // 12,345,678,901.23 yuan: more than 2^32 fen

const cases: Record<string, Case> = {
  // (a) Unary calls: office registers the applying unit, the applicant creates a project,
  // office reads it back. Checks int64 (bigint), Date, Timestamp and enum round trips and that
  // the response headers the server exposes are readable cross-origin.
  async unary(ctx, shared) {
    const office = clients(ctx, "office");
    const applicant = clients(ctx, "applicant");
    const org = await office.projects.createOrganization({
      organization: {
        creditCode: ctx.applicantOrg,
        displayName: "City Data Bureau (browser test)",
        kind: ppb.OrganizationKind.APPLYING_UNIT,
        contacts: [{ name: "Li Na", email: "lina@bureau.example" }],
      },
    });
    const created = await applicant.projects.createProject({
      project: {
        applicant: org.name,
        displayName: `Browser test project ${ctx.runId}`,
        category: "software",
        description: "Created from a browser over gRPC-Web.",
        plannedStartDate: { year: 2027, month: 3, day: 1 },
        plannedEndDate: { year: 2027, month: 12, day: 31 },
        estimatedInvestmentFen: INVESTMENT_FEN,
        fundingSource: ppb.FundingSource.CITY_BUDGET,
        contacts: [{ name: "Wang Wei", title: "project lead", phone: "13912345678" }],
      },
    });
    shared.project = created.name;
    let headers: Headers | undefined;
    const got = await office.projects.getProject(
      { name: created.name },
      { onHeader: (h) => (headers = h) },
    );
    return {
      organizationName: org.name,
      name: got.name,
      code: got.code,
      state: ppb.ProjectState[got.state],
      applicant: got.applicant,
      displayName: got.displayName,
      investmentType: typeof got.estimatedInvestmentFen,
      investmentEqual: got.estimatedInvestmentFen === INVESTMENT_FEN,
      investment: got.estimatedInvestmentFen.toString(),
      plannedStartDate: got.plannedStartDate
        ? [got.plannedStartDate.year, got.plannedStartDate.month, got.plannedStartDate.day]
        : null,
      fundingSource: ppb.FundingSource[got.fundingSource],
      contactPhone: got.contacts[0]?.phone ?? null,
      createTimeSecondsType: typeof got.createTime?.seconds,
      createTimeAgeSeconds: got.createTime ? Math.abs(Date.now() / 1000 - Number(got.createTime.seconds)) : null,
      etag: got.etag,
      requestIdHeader: headers?.get("x-request-id") ?? null,
      contentTypeHeader: headers?.get("content-type") ?? null,
    };
  },

  // (b) A server-streaming call: StreamNotifications (service role, for delivery gateways).
  // The registry admin seeds a category with two experts, office asks scheduling for a review
  // of the project, the scheduler draws the panel (the test runs `up` without witnesses) and
  // invites both: each invitation is a notification the stream delivers.
  async serverStreaming(ctx, shared) {
    const admin = clients(ctx, "registry_admin");
    const office = clients(ctx, "office");
    const gateway = clients(ctx, "service");
    const category = `browser-${ctx.runId}`;
    await admin.experts.createCategory({ category: { code: category, displayName: "Browser test category" } });
    const expertIds: string[] = [];
    for (let i = 1; i <= 2; i++) {
      const id = `browser-${ctx.runId}-e${i}`;
      await admin.experts.createExpert({
        expert: {
          expertId: id,
          displayName: `Browser Expert ${i}`,
          employer: { creditCode: creditCode(`91650100MA7900${String(i).padStart(3, "0")}`), name: `Consultancy ${i}` },
          source: epb.ExpertSource.IT_ENTERPRISE,
          title: "senior engineer",
          categories: [category],
          phone: `1390000${String(i).padStart(4, "0")}`,
          email: `${id}@experts.example`,
          idNumber: residentId(`65010219800101${String(i).padStart(3, "0")}`),
          appointmentStartDate: { year: 2025, month: 1, day: 1 },
          appointmentEndDate: { year: 2029, month: 12, day: 31 },
        },
      });
      expertIds.push(id);
    }
    if (!shared.project) throw new Error("the unary case did not leave a project");
    const review = await office.scheduling.requestReview({
      reviewId: `browser-${ctx.runId}`,
      project: shared.project,
      stage: common.ReviewStage.PRELIMINARY_REVIEW,
      panel: [{ category, count: 2, alternates: 0 }],
      excludedOrganizations: [ctx.applicantOrg],
      applicantOrganization: ctx.applicantOrg,
      acceptTime: timestampNow(),
    });

    // Every notification not yet acknowledged, then new ones as they arrive: read until both
    // invitations of this review came, or give up after 30 s.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 30_000);
    const received: spb.Notification[] = [];
    let messages = 0;
    let streamError: Result | null = null;
    try {
      for await (const n of gateway.scheduling.streamNotifications({}, { signal: abort.signal })) {
        messages++;
        if (n.review === review.name) received.push(n);
        if (received.length >= 2) break; // ends the call: the browser cancels the fetch
      }
    } catch (err) {
      streamError = describeError(err);
    } finally {
      clearTimeout(timer);
    }
    // Acknowledged ones are not sent again.
    for (const n of received) await gateway.scheduling.acknowledgeNotification({ name: n.name });
    const reread = await office.scheduling.getReview({ name: review.name });
    return {
      review: review.name,
      reviewState: spb.ReviewState[reread.state],
      invitations: reread.invitations.map((i) => i.expertId).sort(),
      expertIds,
      messages,
      streamError,
      notifications: received.map((n) => ({
        name: n.name,
        recipient: n.recipient,
        channel: spb.Channel[n.channel],
        status: spb.NotificationStatus[n.status],
        text: n.text,
        review: n.review,
      })),
      // Office may not open the gateway's stream: the error arrives on the first read.
      officeStream: await expectError(async () => {
        for await (const _ of office.scheduling.streamNotifications({})) break;
      }),
    };
  },

  // (c) A resumable upload from the browser (StartUpload, AppendUpload, FinishUpload): first by
  // hand, as a flaky network would make it (a chunk sent twice, one at the wrong offset, a
  // resume after asking where it was), then with the uploadDocument helper; both documents are
  // read back over the DownloadDocument server stream.
  async resumableUpload(ctx, shared) {
    const applicant = clients(ctx, "applicant");
    const office = clients(ctx, "office");
    if (!shared.project) throw new Error("the unary case did not leave a project");
    const content = new Uint8Array(300_000).map((_, i) => (i * 7) % 251);
    const metadata = {
      parent: shared.project,
      kind: ppb.DocumentKind.FEASIBILITY_STUDY_REPORT,
      fileName: "feasibility-study.pdf",
      mediaType: "application/pdf",
    };
    const upload = await applicant.projects.startUpload({ metadata: { ...metadata, requestId: newRequestId() } });
    const first = await applicant.projects.appendUpload({ name: upload.name, offset: 0n, data: content.subarray(0, 100_000) });
    const resent = await applicant.projects.appendUpload({ name: upload.name, offset: 0n, data: content.subarray(0, 100_000) });
    const skipped = await expectError(() =>
      applicant.projects.appendUpload({ name: upload.name, offset: 200_000n, data: content.subarray(200_000) }),
    );
    const where = await applicant.projects.getUpload({ name: upload.name });
    const at = Number(where.receivedBytes);
    await applicant.projects.appendUpload({ name: upload.name, offset: BigInt(at), data: content.subarray(at) });
    const listedBefore = await office.projects.listDocuments({ parent: shared.project });
    const sha256 = await sha256Hex(content);
    const document = await applicant.projects.finishUpload({ name: upload.name, sha256 });

    const progress: number[] = [];
    const second = await uploadDocument(
      applicant.projects,
      { ...metadata, kind: ppb.DocumentKind.OTHER, fileName: "annex.bin", mediaType: "application/octet-stream" },
      content.subarray(0, 250_000),
      { chunkSize: 64 * 1024, onProgress: (received) => progress.push(received) },
    );

    const download = async (name: string) => {
      const parts: Uint8Array[] = [];
      let head: ppb.Document | undefined;
      for await (const message of office.projects.downloadDocument({ name })) {
        if (message.part.case === "metadata") head = message.part.value;
        if (message.part.case === "chunk") parts.push(message.part.value);
      }
      const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let offset = 0;
      for (const p of parts) {
        bytes.set(p, offset);
        offset += p.length;
      }
      return { head, bytes, chunks: parts.length };
    };
    const downloaded = await download(document.name);
    const downloadedSecond = await download(second.name);
    return {
      upload: upload.name,
      maxBytes: upload.maxBytes.toString(),
      firstReceived: Number(first.receivedBytes),
      resentReceived: Number(resent.receivedBytes),
      skipped,
      resumedAt: at,
      documentsBeforeFinish: listedBefore.documents.length,
      document: document.name,
      documentSize: Number(document.sizeBytes),
      documentSha256: document.sha256,
      sha256,
      downloadedEqual:
        downloaded.bytes.length === content.length && downloaded.bytes.every((b, i) => b === content[i]),
      downloadedName: downloaded.head?.name ?? null,
      downloadChunks: downloaded.chunks,
      helperDocument: second.name,
      helperKind: ppb.DocumentKind[second.kind],
      helperProgress: progress,
      helperDownloadedEqual:
        downloadedSecond.bytes.length === 250_000 && downloadedSecond.bytes.every((b, i) => b === content[i]),
    };
  },

  // (d) Retries: the same request_id answers with the first result; with another request it is
  // refused.
  async retries(ctx) {
    const applicant = clients(ctx, "applicant");
    const requestId = newRequestId();
    const project = {
      applicant: `organizations/${ctx.applicantOrg}`,
      displayName: `Retried project ${ctx.runId}`,
      category: "software",
    };
    const first = await applicant.projects.createProject({ project, requestId });
    const again = await applicant.projects.createProject({ project, requestId });
    const other = await expectError(() =>
      applicant.projects.createProject({ project: { ...project, displayName: "Another" }, requestId }),
    );
    return { first: first.name, again: again.name, other };
  },

  // (e) Errors, as a browser sees them: code, google.rpc.ErrorInfo, BadRequest, ResourceInfo,
  // LocalizedMessage in the language asked for.
  async errors(ctx) {
    const office = clients(ctx, "office");
    const applicant = clients(ctx, "applicant");
    const anonymous = clients(ctx, undefined);
    const otherOrg = creditCode("91650100MA7800099");
    return {
      notFound: await expectError(() => office.projects.getProject({ name: "projects/2026-9999" })),
      invalid: await expectError(() =>
        applicant.projects.createProject({
          project: {
            applicant: `organizations/${ctx.applicantOrg}`,
            displayName: "Invalid project",
            category: "software",
            estimatedInvestmentFen: 1n << 53n, // past the 100 billion yuan limit
            contacts: [{ name: "Wang Wei", phone: "not a phone" }],
          },
        }),
      ),
      badName: await expectError(() => office.projects.getProject({ name: "2026-0001" })),
      notFoundInEnglish: await expectError(() =>
        clients({ ...ctx, language: "en-US,en;q=0.9" }, "office").projects.getProject({ name: "projects/2026-9999" }),
      ),
      unauthenticated: await expectError(() => anonymous.projects.getProject({ name: "projects/2026-0001" })),
      permissionDenied: await expectError(() =>
        applicant.projects.createProject({
          project: { applicant: `organizations/${otherOrg}`, displayName: "Someone else's", category: "software" },
        }),
      ),
    };
  },
};

declare global {
  interface Window {
    govitTest: {
      cases: string[];
      run(name: string, ctx: Context): Promise<Result>;
    };
    __results: Record<string, Result>;
  }
}

const shared: Shared = {};
window.__results = {};
window.govitTest = {
  cases: Object.keys(cases),
  async run(name, ctx) {
    const c = cases[name];
    if (!c) throw new Error(`no case ${name}; cases: ${Object.keys(cases).join(", ")}`);
    let result: Result;
    try {
      result = await c(ctx, shared);
    } catch (err) {
      // An unexpected failure: report it as data so node can print it with the case's name.
      result = { failed: err instanceof Error ? `${err.name}: ${err.message}` : String(err), error: describeError(err) };
    }
    window.__results[name] = result;
    return result;
  },
};
document.title = "govit browser test: ready";
