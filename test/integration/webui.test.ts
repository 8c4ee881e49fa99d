// The Temporal Web UI as a user drives it (headless Debian chromium through playwright-core):
// a build that waits after a failed step is retried with the UI's "Send a Signal", or Reset
// to the event that scheduled the failed step; either way the build completes once the file
// the step needs exists, and the steps that had finished do not run again.
import { promises as fs, existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pw from 'playwright-core'; // CommonJS: no named exports under ESM
import { strata } from '../helpers/cli.js';
import { stepStarts } from '../helpers/temporal.js';

const CHROMIUM = process.env.STRATA_CHROMIUM || '/usr/bin/chromium';

let served: string;
let server: http.Server;
let port: number;
let browser: pw.Browser;
let connection: Connection;
let client: Client;

beforeAll(async () => {
  served = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-webui-'));
  // The file a RUN step fetches: 404 until the test "fixes" it by creating it.
  server = http.createServer((req, res) => {
    const file = path.join(served, path.basename(req.url ?? '/'));
    fs.readFile(file).then(
      (data) => res.end(data),
      () => {
        res.statusCode = 404;
        res.end();
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: run scripts/setup.sh (Debian's chromium) or set STRATA_CHROMIUM`);
  browser = await pw.chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  connection = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
  client = new Client({ connection });
});

afterAll(async () => {
  await browser?.close();
  await connection?.close();
  await new Promise((r) => server?.close(r));
  await fs.rm(served, { recursive: true, force: true });
});

/** Starts a build whose step 3 fetches FILE from the test's server (on this host's loopback: the step needs the host's network); returns its ID once it waits. */
async function waitingBuild(file: string, flags: string[] = []): Promise<string> {
  const ctx = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-webui-ctx-'));
  try {
    await fs.writeFile(
      path.join(ctx, 'Dockerfile'),
      // Step 2 names the file too, so each build runs it (no instruction cache entry from another).
      ['FROM busybox', `RUN echo one ${file} > /one`, `RUN --network=host wget -q -O /${file} http://127.0.0.1:${port}/${file}`, 'RUN echo two > /two'].join('\n'),
    );
    const r = await strata(['build', ...flags, '--allow', 'network.host', '--retry-window', '1h', ctx]);
    expect({ code: r.exitCode, waiting: r.stderr.includes('The build is waiting for a decision') }).toEqual({ code: 2, waiting: true });
    return /^Build ID: (build-[0-9a-f]+)$/m.exec(r.stdout)![1]!;
  } finally {
    await fs.rm(ctx, { recursive: true, force: true });
  }
}

/** The build's page, its "More Actions" menu open. Items exist twice (wide and narrow layouts): use the visible one. */
async function openActions(id: string): Promise<pw.Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`http://127.0.0.1:${Number(process.env.STRATA_TEMPORAL_PORT) + 1000}/namespaces/default/workflows/${id}`);
  await visible(page.getByRole('button', { name: 'More Actions' })).click();
  return page;
}

function visible(l: pw.Locator): pw.Locator {
  return l.filter({ visible: true }).first();
}

test("the build's page shows its summary (tags), its details, each step's text in the timeline, and a waiting build as waiting", async () => {
  const id = await waitingBuild('flag-summary', ['-t', 'webui-summary:1', '--progress=plain']);
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  try {
    await page.goto(`http://127.0.0.1:${Number(process.env.STRATA_TEMPORAL_PORT) + 1000}/namespaces/default/workflows/${id}`);
    // Markdown (details) renders in sandboxed iframes: look in every frame.
    const shownText = async () =>
      (
        await Promise.all(
          page.frames().map((f) =>
            f
              .locator('body')
              .innerText()
              .catch(() => ''),
          ),
        )
      ).join('\n');
    const expectShown = async (text: string | RegExp) => {
      let seen = '';
      for (let i = 0; i < 75; i++) {
        seen = await shownText();
        if (typeof text === 'string' ? seen.includes(text) : text.test(seen)) return;
        await page.waitForTimeout(200);
      }
      throw new Error(`the Web UI does not show ${String(text)}; it shows:\n${seen}`);
    };
    // The timeline names activities by their Dockerfile step, not only runStep, and the wait
    // for a retry by the step that failed (Temporal's own status says Running).
    await expectShown('runStep • RUN echo one flag-summary > /one');
    await expectShown(/^waiting for strata retry or abort: step 3 of 4 \(RUN --network=host wget/m);
    // The user metadata: the static summary and details, not only `build-<hex>` of type
    // buildImage, and the current details, which say the build waits.
    await visible(page.getByText('User Metadata', { exact: true })).click();
    await expectShown('strata build webui-summary:1');
    await visible(page.getByText('Details', { exact: true })).click();
    await expectShown(/Tags: webui-summary:1/);
    await expectShown(/Waiting for a retry/);
  } finally {
    await page.close();
    await strata(['abort', id]);
  }
});

test('a waiting build completes after the Web UI sends it the retry signal', async () => {
  const id = await waitingBuild('flag-signal');
  await fs.writeFile(path.join(served, 'flag-signal'), 'fixed\n');

  const page = await openActions(id);
  try {
    await visible(page.getByTestId('signal-button')).click();
    // The UI lists the workflow's signals from its metadata; the input stays empty.
    await visible(page.getByTestId('signal-select-button')).click();
    await visible(page.getByRole('option', { name: 'retry', exact: true })).click();
    await visible(page.getByRole('button', { name: 'Submit' })).click();
  } finally {
    await page.close();
  }

  const attached = await strata(['attach', id]);
  expect({ code: attached.exitCode, stderr: attached.stderr }).toEqual({ code: 0, stderr: '' });
  expect(attached.stdout).toContain('Successfully built');
  expect(Object.fromEntries(await stepStarts(id))).toEqual({ 2: 1, 3: 2, 4: 1 });
});

test('a waiting build Reset from the Web UI to the event that scheduled the failed step completes, running only from there', async () => {
  const id = await waitingBuild('flag-reset');
  const before = await client.workflow.getHandle(id).describe();
  // The workflow task that scheduled step 3's activity: the newest event a Reset can keep step 2 from.
  let resetPoint: string | undefined;
  const converter = client.options.loadedDataConverter.payloadConverter;
  for (const e of (await client.workflow.getHandle(id).fetchHistory()).events ?? []) {
    const a = e.activityTaskScheduledEventAttributes;
    const payload = a?.input?.payloads?.[0];
    if (payload && converter.fromPayload<{ step?: { number?: number } }>(payload)?.step?.number === 3) resetPoint = String(a!.workflowTaskCompletedEventId);
  }
  expect(resetPoint).toBeDefined();
  await fs.writeFile(path.join(served, 'flag-reset'), 'fixed\n');

  const page = await openActions(id);
  try {
    await visible(page.getByTestId('reset-button')).click();
    await visible(page.getByTestId('workflow-reset-event-id-select-button')).click();
    await visible(page.getByRole('option', { name: `${resetPoint} - WorkflowTaskCompleted` })).click();
    await visible(page.getByTestId('reset-reason')).fill('the file is there now');
    await visible(page.getByRole('button', { name: 'Confirm' })).click();
    // The reset made a new run of the same build ID.
    for (let i = 0; i < 100 && (await client.workflow.getHandle(id).describe()).runId === before.runId; i++) await page.waitForTimeout(200);
  } finally {
    await page.close();
  }
  expect((await client.workflow.getHandle(id).describe()).runId).not.toBe(before.runId);

  const attached = await strata(['attach', id]);
  expect({ code: attached.exitCode, stderr: attached.stderr }).toEqual({ code: 0, stderr: '' });
  expect(attached.stdout).toContain('Successfully built');
  // The new run keeps steps 1-2 from history; only 3 and 4 ran in it.
  expect(Object.fromEntries(await stepStarts(id))).toEqual({ 2: 1, 3: 1, 4: 1 });
  const runs = await strata(['builds', 'ls']);
  expect(runs.stdout).toMatch(new RegExp(`${id} +terminated`));
  expect(runs.stdout).toMatch(new RegExp(`${id} +succeeded`));
});
