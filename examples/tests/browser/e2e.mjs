// End-to-end test of the example application in headless Chromium.
// Usage: node e2e.mjs <app-url> <screenshot-dir>
// Run by examples/tests/browser.rs, which starts the application first. When the application
// runs with CAPTURE=1, PLAIN_SQL is the path of the examples' plain-sql program and
// DATABASE_URL the application's database: part 5 writes with plain SQL from outside.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const [base, outDir] = process.argv.slice(2);
const TIMEOUT = 20_000;
mkdirSync(outDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
page.on("console", (message) => console.log(`[page] ${message.text()}`));
page.on("pageerror", (error) => console.log(`[page error] ${error}`));

const post = async (path) => {
  const response = await fetch(base + path, { method: "POST" });
  if (!response.ok && response.status !== 202) throw new Error(`POST ${path}: ${response.status}`);
};
const text = (selector, expected) =>
  page.waitForFunction(
    ([selector, expected]) => document.querySelector(selector)?.textContent === expected,
    [selector, expected],
    { timeout: TIMEOUT },
  );
const live = () =>
  page.waitForFunction(() => document.getElementById("live")?.textContent.startsWith("live"), null, { timeout: TIMEOUT });
// Opens `url` (a hub subscription) with the page's cookies and reads it until an event's data
// contains `needle`; fails after TIMEOUT.
const hubYields = async (url, needle) => {
  const cookies = await page.context().cookies(url);
  const cookie = cookies.map((c) => `${c.name}=${c.value}`).join("; ");
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT);
  try {
    const response = await fetch(url, { headers: { Cookie: cookie, Accept: "text/event-stream" }, signal: abort.signal });
    if (!response.ok) throw new Error(`subscribing to ${url}: ${response.status}`);
    const decoder = new TextDecoder();
    let received = "";
    for await (const chunk of response.body) {
      received += decoder.decode(chunk, { stream: true });
      if (received.split("\n").some((line) => line.startsWith("data:") && line.includes(needle))) return;
    }
    throw new Error(`${url} ended without ${needle}`);
  } catch (error) {
    if (abort.signal.aborted) throw new Error(`${url} did not yield ${needle} within ${TIMEOUT} ms`);
    throw error;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
};
// A marker that a reload would erase.
const markPage = () => page.evaluate(() => { window.__notReloaded = true; });
const assertNotReloaded = async (what) => {
  if (!(await page.evaluate(() => window.__notReloaded === true))) throw new Error(`${what}: the page was reloaded`);
};

// 1. The list follows order changes made through the API and through a service.
await page.goto(base + "/");
await text('[data-testid="order-status-ord-1002"]', "PROCESSING");
await live();
await markPage();

await post("/api/orders/ord-1002/advance");
await text('[data-testid="order-status-ord-1002"]', "READY_FOR_REVIEW");
console.log("list: ord-1002 READY_FOR_REVIEW after the API call");

// The ingestion, on a tracked session: by hand (track_changes + add_tracking_context)...
await post("/api/orders/ord-1001/ingest?form=by_hand");
await text('[data-testid="order-status-ord-1001"]', "PROCESSING");
console.log("list: ord-1001 PROCESSING from the ingestion written by hand");
await text('[data-testid="order-status-ord-1001"]', "READY_FOR_REVIEW");
console.log("list: ord-1001 READY_FOR_REVIEW from the ingestion written by hand");
// ...and as the auto-tracked service.
await post("/api/orders/ord-1003/ingest?form=autotracked");
await text('[data-testid="order-status-ord-1003"]', "PROCESSING");
console.log("list: ord-1003 PROCESSING from the auto-tracked ingestion service");
await text('[data-testid="order-status-ord-1003"]', "READY_FOR_REVIEW");
console.log("list: ord-1003 READY_FOR_REVIEW from the auto-tracked ingestion service");
await assertNotReloaded("list page");
await page.screenshot({ path: `${outDir}/list.png`, fullPage: true });

// 2. The order page follows a coloring generation through every status.
await page.goto(base + "/orders/ord-1001");
await text('[data-testid="order-status"]', "READY_FOR_REVIEW");
await live();
await markPage();
await page.click('#image-1 [data-action="generate"]');
await text('[data-testid="coloring-status-1"]', "COMPLETED");
await text('[data-testid="coloring-history-1"]', "QUEUED → UPLOADING → GENERATING → COMPLETED");
await page.waitForFunction(() => document.querySelector("#image-1 .selected")?.textContent.includes("Coloring"), null, { timeout: TIMEOUT });
console.log("order: image 1 went QUEUED → UPLOADING → GENERATING → COMPLETED and was selected");

// The order status follows on the order page too.
await post("/api/orders/ord-1001/advance");
await text('[data-testid="order-status"]', "APPROVED");
await assertNotReloaded("order page");
await page.screenshot({ path: `${outDir}/order.png`, fullPage: true });

// 3. A change committed between the page's render and its subscription is replayed, not lost.
// The page's subscription request is held back; meanwhile the order advances and the hub gets
// the update; then the request goes out as the page built it (with the last-event-id of the
// Link header of the response it was rendered from) and the page must show the change.
const held = [];
const hubRequests = /\/\.well-known\/mercure\?/;
await page.route(hubRequests, (route) => { held.push(route); });
await page.goto(base + "/orders/ord-1002");
await text('[data-testid="order-status"]', "READY_FOR_REVIEW");
const deadline = Date.now() + TIMEOUT;
while (held.length === 0) {
  if (Date.now() > deadline) throw new Error("the page never subscribed");
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const subscription = held[0].request().url();
console.log(`window: subscription held: ${subscription}`);
await post("/api/orders/ord-1002/advance");
// The same subscription, from here with the page's cookie: once it yields the change, the hub
// holds it in its history, before the page has subscribed.
await hubYields(subscription, '"type":"order_update","order_id":"ord-1002"');
console.log("window: the hub has the update; releasing the page's subscription");
for (const route of held) await route.continue();
await page.unroute(hubRequests);
await text('[data-testid="order-status"]', "APPROVED");
await page.waitForFunction(() => document.getElementById("live")?.textContent.startsWith("live"), null, { timeout: TIMEOUT });
console.log("window: the page shows APPROVED, replayed from the hub");

// 4. One set-based write approves every order ready for review (ord-1003, ord-1004, ord-1005);
// the list shows them all approved from the events of that one commit, without a reload.
await page.goto(base + "/");
await text('[data-testid="order-status-ord-1004"]', "READY_FOR_REVIEW");
await live();
await markPage();
await page.click("#approve-ready");
for (const id of ["ord-1003", "ord-1004", "ord-1005"]) {
  await text(`[data-testid="order-status-${id}"]`, "APPROVED");
}
await text('[data-testid="approved"]', "approved in one write: ord-1003, ord-1004, ord-1005");
await assertNotReloaded("list page (set-based write)");
console.log("list: ord-1003, ord-1004, ord-1005 APPROVED by one set-based write");
await page.screenshot({ path: `${outDir}/approved.png`, fullPage: true });

// 5. CAPTURE=1: plain SQL from another program, with no session, and the open pages follow.
if (process.env.PLAIN_SQL) {
  const plainSql = async (sql) => {
    const { stdout } = await promisify(execFile)(process.env.PLAIN_SQL, [sql], { timeout: TIMEOUT });
    console.log(`plain SQL: ${sql} -> ${stdout.trim()}`);
  };
  await plainSql("UPDATE orders SET status = 'NEW' WHERE id = 'ord-1004'");
  await text('[data-testid="order-status-ord-1004"]', "NEW");
  await assertNotReloaded("list page (plain SQL)");
  console.log("capture: the list shows ord-1004 NEW, written with plain SQL");

  // The image tables: an svg's status and the image's selection, in one outside transaction;
  // the order page's update is private (its cookie lets it through).
  await page.goto(base + "/orders/ord-1001");
  await page.waitForSelector("#image-1");
  await live();
  await markPage();
  await plainSql("UPDATE svg_versions SET status = 'FAILED' WHERE id = 1; UPDATE images SET selected_svg_id = 1 WHERE id = 1");
  await page.waitForFunction(
    () => document.querySelector("#image-1 .versions")?.textContent.includes("SVG 1: FAILED — selected"),
    null, { timeout: TIMEOUT });
  await assertNotReloaded("order page (plain SQL)");
  console.log("capture: the order page shows SVG 1 FAILED and selected, written with plain SQL");
  await page.screenshot({ path: `${outDir}/captured.png`, fullPage: true });
}
console.log(`screenshots in ${outDir}`);

await browser.close();
