// Browser test: the real services (`govit up` on a fresh data directory), a page served from
// another origin, headless Chromium calling them over gRPC-Web through CORS.
//
//   npm run bundle && GOVIT_BIN=/path/to/govit node --test test/browser.test.mjs
//
// GOVIT_BIN defaults to ../../target/debug/govit (relative to clients/ts); CHROMIUM to
// /usr/bin/chromium. The cases live in test/page.ts (what the browser does) and in `cases`
// below (what must hold); they run in order and may pass state along (the unary case's project
// is the one the streaming case asks a review for).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const GOVIT_BIN = resolve(pkgDir, process.env.GOVIT_BIN ?? "../../target/debug/govit");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const APPLICANT_ORG = "91350100M000100Y43"; // a valid credit code (README's example)
const ROLES = ["office", "applicant", "registry_admin", "service", "supervisor", "inspector"];
const LANGUAGE = "zh-CN";
const execFileP = promisify(execFile);

/** What each case in test/page.ts must have seen. */
const cases = [
  {
    name: "unary",
    check(r) {
      assert.match(r.name, /^projects\/\d{4}-\d{4}$/, "GetProject returns the created project's name");
      assert.equal(r.organizationName, `organizations/${APPLICANT_ORG}`, "CreateOrganization names it by credit code");
      assert.equal(r.state, "DRAFT", "a new project is a draft");
      assert.equal(r.applicant, `organizations/${APPLICANT_ORG}`);
      assert.equal(r.investmentType, "bigint", "int64 fields are bigint in protobuf-es v2");
      assert.equal(r.investmentEqual, true, `int64 round trip: got ${r.investment}`);
      assert.deepEqual(r.plannedStartDate, [2027, 3, 1], "google.type.Date round trip");
      assert.equal(r.fundingSource, "CITY_BUDGET", "enum round trip");
      assert.equal(r.contactPhone, "13912345678");
      assert.equal(r.createTimeSecondsType, "bigint", "Timestamp.seconds is bigint");
      assert.ok(r.createTimeAgeSeconds < 300, `create_time is now, off by ${r.createTimeAgeSeconds}s`);
      assert.match(r.etag, /.+/, "an etag for updates");
      assert.match(r.requestIdHeader ?? "", /^[0-9a-f-]{36}$/, "x-request-id is exposed to the page (Access-Control-Expose-Headers)");
      assert.equal(r.contentTypeHeader, "application/grpc-web+proto", "binary gRPC-Web");
    },
  },
  {
    name: "serverStreaming",
    check(r) {
      assert.equal(r.streamError, null, `the stream ended with an error: ${JSON.stringify(r.streamError)}`);
      assert.equal(r.notifications.length, 2, `two invitations were streamed (${r.messages} messages in all)`);
      assert.deepEqual(
        r.notifications.map((n) => n.recipient).sort(),
        r.expertIds.map((id) => `experts/${id}`).sort(),
        "one notification per invited expert",
      );
      for (const n of r.notifications) {
        assert.match(n.name, /^notifications\/.+/);
        assert.equal(n.review, r.review);
        assert.equal(n.channel, "SMS");
        assert.match(n.text, /invited/, `an invitation: ${n.text}`);
        assert.doesNotMatch(n.text, /1390000/, "no phone numbers in notifications");
      }
      assert.deepEqual(r.invitations, [...r.expertIds].sort(), "both experts invited");
      assert.equal(r.officeStream.code, "PermissionDenied", "office may not open the gateway's stream");
      assert.equal(r.officeStream.errorInfo?.reason, "PERMISSION_DENIED");
    },
  },
  {
    name: "resumableUpload",
    check(r) {
      assert.match(r.upload, /^projects\/\d{4}-\d{4}\/uploads\/.+/, "an Upload resource");
      assert.equal(r.firstReceived, 100_000);
      assert.equal(r.resentReceived, 100_000, "a chunk sent again changes nothing");
      assert.equal(r.skipped.code, "FailedPrecondition", `a chunk at the wrong offset: ${JSON.stringify(r.skipped)}`);
      assert.equal(r.skipped.errorInfo?.reason, "UPLOAD_OFFSET_MISMATCH");
      assert.equal(r.skipped.errorInfo?.metadata.received_bytes, "100000", "the error says where to continue");
      assert.equal(r.resumedAt, 100_000, "GetUpload says where to resume");
      assert.equal(r.documentsBeforeFinish, 0, "nothing is visible until finished");
      assert.equal(r.documentSize, 300_000);
      assert.equal(r.documentSha256, r.sha256, "the server's hash is the browser's");
      assert.equal(r.downloadedName, r.document);
      assert.equal(r.downloadedEqual, true, "the downloaded bytes are the uploaded ones");
      assert.ok(r.downloadChunks >= 2, `the download streamed in chunks (${r.downloadChunks})`);
      assert.equal(r.helperKind, "OTHER");
      assert.equal(r.helperDownloadedEqual, true, "uploadDocument's document reads back");
      assert.deepEqual(r.helperProgress.slice(-1), [250_000], "progress ends at the whole size");
    },
  },
  {
    name: "retries",
    check(r) {
      assert.match(r.first, /^projects\//);
      assert.equal(r.again, r.first, "the same request_id answers with the first project");
      assert.equal(r.other.code, "AlreadyExists");
      assert.equal(r.other.errorInfo?.reason, "REQUEST_ID_REUSED");
    },
  },
  {
    name: "errors",
    check(r) {
      const nf = r.notFound;
      assert.equal(nf.code, "NotFound", `GetProject on a missing project: ${JSON.stringify(nf)}`);
      assert.deepEqual(
        { reason: nf.errorInfo?.reason, domain: nf.errorInfo?.domain },
        { reason: "NOT_FOUND", domain: "govit" },
        "ErrorInfo of NOT_FOUND",
      );
      assert.equal(nf.resourceInfo?.resourceName, "projects/2026-9999", "ResourceInfo names the missing project");
      assert.match(nf.requestId ?? "", /^[0-9a-f-]{36}$/, "x-request-id readable on errors");

      const inv = r.invalid;
      assert.equal(inv.code, "InvalidArgument", `CreateProject with bad fields: ${JSON.stringify(inv)}`);
      assert.deepEqual(
        { reason: inv.errorInfo?.reason, domain: inv.errorInfo?.domain },
        { reason: "INVALID_ARGUMENT", domain: "govit" },
      );
      const fields = inv.fieldViolations.map((v) => v.field).sort();
      assert.deepEqual(
        fields,
        ["project.contacts[0].phone", "project.estimated_investment_fen"],
        `BadRequest names each bad field as sent: ${JSON.stringify(inv.fieldViolations)}`,
      );
      for (const v of inv.fieldViolations) assert.match(v.description, /.+/, `a description for ${v.field}`);

      assert.deepEqual(
        nf.localizedMessage,
        { locale: "zh-CN", message: "未找到项目 projects/2026-9999" },
        "a LocalizedMessage in the page's language",
      );
      assert.equal(r.notFoundInEnglish.localizedMessage?.locale, "en");
      assert.equal(r.notFoundInEnglish.localizedMessage?.message, r.notFoundInEnglish.rawMessage);
      const phone = inv.fieldViolations.find((v) => v.field === "project.contacts[0].phone");
      assert.equal(phone?.reason, "INVALID_PHONE_NUMBER", "field violations carry a reason");
      assert.equal(phone?.localizedMessage, "project.contacts[0].phone：不是有效的电话号码");
      assert.equal(r.unauthenticated.localizedMessage?.message, "未登录或登录凭证无效，请重新登录");

      assert.equal(r.badName.code, "InvalidArgument");
      assert.deepEqual(r.badName.fieldViolations.map((v) => v.field), ["name"]);

      assert.equal(r.unauthenticated.code, "Unauthenticated", `no token: ${JSON.stringify(r.unauthenticated)}`);
      assert.equal(r.unauthenticated.errorInfo?.reason, "UNAUTHENTICATED");
      assert.equal(r.unauthenticated.errorInfo?.domain, "govit");

      assert.equal(r.permissionDenied.code, "PermissionDenied", `another org's project: ${JSON.stringify(r.permissionDenied)}`);
      assert.equal(r.permissionDenied.errorInfo?.reason, "PERMISSION_DENIED");
    },
  },
];

// ---------------------------------------------------------------------------------------------

const env = { ...process.env };
for (const k of Object.keys(env)) if (k.startsWith("GOVIT_")) delete env[k]; // no stray config
env.NO_COLOR = "1";

let dataDir;
let govit;
let govitLog = "";
let staticServer;
let browser;
let page;
let origin;
let endpoints;
const tokens = {};
const browserLog = [];

function killGovit(signal) {
  if (govit && govit.exitCode === null && govit.signalCode === null) govit.kill(signal);
}
process.on("exit", () => killGovit("SIGKILL"));

/** Serves the test page and its bundle; everything else is 404. */
async function serveStatic() {
  const bundle = await readFile(join(pkgDir, "dist/page.js")).catch(() => {
    throw new Error("dist/page.js is missing: run `npm run bundle` (or `npm run build`) first");
  });
  const html = `<!doctype html><meta charset="utf-8"><title>govit browser test</title>
<script type="module" src="/page.js"></script>`;
  const server = createServer((req, res) => {
    if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    } else if (req.url === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return server;
}

/** Starts `govit up` on free ports and returns the three endpoints it prints. */
async function startGovit() {
  const args = [
    "up",
    "--data-dir", dataDir,
    "--projects-listen", "127.0.0.1:0",
    "--experts-listen", "127.0.0.1:0",
    "--scheduling-listen", "127.0.0.1:0",
    "--cors-origin", origin,
    "--draw-require-witness", "false",
  ];
  govit = spawn(GOVIT_BIN, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  return await new Promise((ok, fail) => {
    const found = {};
    const timer = setTimeout(() => fail(new Error(`govit up printed no endpoints in 60 s:\n${govitLog}`)), 60_000);
    const onData = (chunk) => {
      govitLog += chunk;
      for (const m of govitLog.matchAll(/^\s+(projects|experts|scheduling)\s+\S+\s+(https?:\/\/\S+)\s*$/gm)) {
        found[m[1]] = m[2];
      }
      if (found.projects && found.experts && found.scheduling) {
        clearTimeout(timer);
        ok(found);
      }
    };
    govit.stdout.setEncoding("utf8").on("data", onData);
    govit.stderr.setEncoding("utf8").on("data", (c) => (govitLog += c));
    govit.on("error", (e) => fail(new Error(`cannot run ${GOVIT_BIN}: ${e.message} (set GOVIT_BIN)`)));
    govit.on("exit", (code, sig) => {
      clearTimeout(timer);
      fail(new Error(`govit up exited (${code ?? sig}) before serving:\n${govitLog}`));
    });
  });
}

/** Waits until each service answers a CORS preflight for the page's origin. */
async function waitForServices() {
  const deadline = Date.now() + 30_000;
  for (const [service, url] of Object.entries(endpoints)) {
    const path = {
      projects: "govit.projects.v1.ProjectService/GetProject",
      experts: "govit.experts.v1.ExpertRegistryService/GetExpert",
      scheduling: "govit.scheduling.v1.ReviewSchedulingService/GetReview",
    }[service];
    for (;;) {
      try {
        const res = await fetch(`${url}/${path}`, {
          method: "OPTIONS",
          headers: {
            origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,x-grpc-web,x-user-agent",
          },
        });
        if (res.ok && res.headers.get("access-control-allow-origin") === origin) break;
        throw new Error(`preflight ${res.status}, allow-origin ${res.headers.get("access-control-allow-origin")}`);
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`${service} at ${url} does not answer: ${e.message}\n${govitLog}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
}

async function mintToken(role) {
  const args = ["token", "--role", role];
  if (role === "applicant") args.push("--org", APPLICANT_ORG);
  if (role === "supervisor") args.push("--bureau", "finance");
  const { stdout } = await execFileP(GOVIT_BIN, args, { env });
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `govit token --role ${role} printed a JWT`);
  return token;
}

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "govit-browser-"));
  staticServer = await serveStatic();
  origin = `http://127.0.0.1:${staticServer.address().port}`;
  endpoints = await startGovit();
  await waitForServices();
  for (const role of ROLES) tokens[role] = await mintToken(role);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage();
  page.on("console", (m) => browserLog.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => browserLog.push(`[pageerror] ${e.message}`));
  page.on("requestfailed", (r) => browserLog.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  await page.goto(origin);
  await page.waitForFunction(() => window.govitTest !== undefined, null, { timeout: 10_000 });
  const available = await page.evaluate(() => window.govitTest.cases);
  assert.deepEqual(available.sort(), cases.map((c) => c.name).sort(), "every page case has its assertions here");
});

after(async () => {
  // Each step on its own: one failing must not leave the others undone.
  await browser?.close().catch(() => {});
  if (govit && govit.exitCode === null && govit.signalCode === null) {
    const exited = new Promise((r) => govit.once("exit", r));
    killGovit("SIGTERM");
    const timer = setTimeout(() => killGovit("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }
  await new Promise((r) => (staticServer ? staticServer.close(r) : r()));
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

for (const c of cases) {
  test(c.name, async (t) => {
    assert.ok(page, "the page did not load (see the before hook's error)");
    const ctx = {
      endpoints,
      tokens,
      applicantOrg: APPLICANT_ORG,
      runId: Date.now().toString(36),
      language: LANGUAGE,
    };
    const result = await page.evaluate(([name, ctx]) => window.govitTest.run(name, ctx), [c.name, ctx]);
    t.diagnostic(`${c.name}: ${JSON.stringify(result)}`);
    if (result.failed) {
      assert.fail(
        `case ${c.name} threw in the browser: ${result.failed}\n${JSON.stringify(result.error)}\n` +
          `browser log:\n${browserLog.join("\n")}\ngovit log (tail):\n${govitLog.slice(-4000)}`,
      );
    }
    try {
      c.check(result);
    } catch (e) {
      e.message += `\nresult: ${JSON.stringify(result, null, 2)}\nbrowser log:\n${browserLog.join("\n")}`;
      throw e;
    }
  });
}

/**
 * The bureaus' portfolio report (`govit report portfolio --format html`) over what the cases
 * above created: one self-contained page whose charts Chromium draws without an error. The
 * screenshot is kept for a person to look at (GOVIT_REPORT_SCREENSHOT, else the temp dir).
 */
test("portfolio report: the HTML page opens in Chromium with its charts drawn", async (t) => {
  assert.ok(browser, "the browser did not start (see the before hook's error)");
  const out = join(dataDir, "portfolio.html");
  await execFileP(GOVIT_BIN, ["report", "portfolio", "--format", "html", "--out", out, "--server", endpoints.projects], { env });
  const report = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const errors = [];
  report.on("pageerror", (e) => errors.push(e.message));
  report.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  report.on("request", (r) => !r.url().startsWith("file:") && errors.push(`the page fetched ${r.url()}`));
  await report.goto(`file://${out}`);
  const sections = await report.evaluate(() => [...document.querySelectorAll("section")].map((s) => s.id));
  assert.deepEqual(sections, ["budget-by-project", "budget-by-unit", "variance", "risk-history", "overdue-findings", "projects"]);
  const charts = await report.evaluate(() =>
    [...document.querySelectorAll("section svg")].map((s) => {
      const r = s.getBoundingClientRect();
      const id = s.closest("section").id;
      // A bar is a rect beside the background's; a project in the variance chart a circle.
      const shapes = id === "variance" ? s.querySelectorAll("circle").length : s.querySelectorAll("rect").length - 1;
      return { section: id, width: r.width, height: r.height, shapes };
    }),
  );
  t.diagnostic(`charts: ${JSON.stringify(charts)}`);
  for (const id of ["budget-by-project", "budget-by-unit", "variance"]) {
    const chart = charts.find((c) => c.section === id);
    assert.ok(chart, `${id} is drawn`);
    assert.ok(chart.width > 300 && chart.height > 100, `${id} has a size: ${JSON.stringify(chart)}`);
    assert.ok(chart.shapes >= 1, `${id} draws its projects: ${JSON.stringify(chart)}`);
  }
  const projects = await report.evaluate(() => document.querySelectorAll("#projects tr").length - 1);
  assert.ok(projects >= 1, "the projects the cases created are in the table");
  const shot = process.env.GOVIT_REPORT_SCREENSHOT ?? join(tmpdir(), "govit-portfolio-report.png");
  await report.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`screenshot: ${shot}`);
  await report.close();
  assert.deepEqual(errors, [], "no error and nothing fetched");
});
