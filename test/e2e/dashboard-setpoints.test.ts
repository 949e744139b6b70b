import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { type Broker, createBroker } from '@plantwatt/broker'
import { generatePlant, simulate } from '@plantwatt/fleet'
import { createGateway, type Gateway } from '@plantwatt/gateway'
import { PlantIndex } from '@plantwatt/plant'
import { Processor } from '@plantwatt/processor'
import { IngestJournal, TokenStore } from '@plantwatt/runtime'
import pino from 'pino'
import { type Browser, chromium, type Page } from 'playwright-core'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Issue 15, the dashboard's setpoint panel: the real broker, processor and gateway (as in
// tuning-closed-loop.test.ts), simulated NB-IoT devices of a generated plant whose tuned ovens are
// in `advise` mode, and Debian's Chromium on the gateway's dashboard. An operator sees each tuned
// equipment's state, approves a proposal in the browser and sees the command applied by the
// device; rejects the next one and sees it rejected. Every wait is on a DOM condition.
//
// The last step takes a screenshot: to the temporary directory, or where
// PLANTWATT_DASHBOARD_SCREENSHOT says (docs/dashboard.png is made that way).

const SECRET = 'dashboard-setpoints-secret'
const CHROMIUM = process.env.PLANTWATT_CHROMIUM ?? '/usr/bin/chromium'
const logger = pino({ level: 'silent' })
// Tuesday 02:00 UTC = 10:00 in Yibin: the plant is producing.
const START_S = Date.UTC(2025, 2, 4, 2, 0) / 1000
const model = generatePlant({ devices: 60, seed: 5 })
const tuned = model.sites.flatMap((site) =>
  site.areas.flatMap((area) =>
    area.lines.flatMap((line) =>
      line.equipment
        .filter((eq) => eq.tuning !== undefined)
        .map((eq) => {
          eq.tuning!.mode = 'advise'
          return `${site.id}/${area.id}/${line.id}/${eq.id}`
        }),
    ),
  ),
)

describe('the setpoint panel in the browser', () => {
  let dir: string
  let journal: IngestJournal
  let broker: Broker
  let processor: Processor
  let gateway: Gateway
  let browser: Browser
  let base: string
  let operator: string
  let stopSimulation: () => Promise<void>

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-dashboard-setpoints-'))
    const plant = new PlantIndex(model)
    journal = await IngestJournal.open(join(dir, 'journal'))
    broker = await createBroker({ plant, deviceSecret: SECRET, logger, uplinkJournal: journal })
    processor = new Processor({
      plant,
      bus: broker.bus,
      logger,
      journal,
      publishIntervalMs: 50,
      // The recording is from 2025 (§7 --accept-old); a short dwell so that proposals come quickly.
      pipeline: { acceptOld: true },
      tuning: { dwellS: 120 },
    })
    await processor.start()
    const tokens = await TokenStore.open(dir)
    operator = (await tokens.issue({ name: 'shift lead', role: 'operator' })).token
    gateway = await createGateway({
      plant,
      bus: broker.bus,
      tokens,
      logger,
      isReady: () => true,
      registry: new Registry(),
    })
    await gateway.start()
    base = `http://127.0.0.1:${await gateway.listen({ host: '127.0.0.1', port: 0 })}`
    const port = await broker.listen({ host: '127.0.0.1', port: 0 })
    const controller = new AbortController()
    const run = simulate({
      plant: model,
      seed: 3,
      startS: START_S,
      durationS: 4 * 3600,
      speed: 150,
      connection: { brokers: [{ host: '127.0.0.1', port }], deviceSecret: SECRET },
      workers: 1,
      // Every device sleeps between wakes a minute apart: a command waits in its session.
      faults: { psm: { share: 1, batchIntervalS: 60 } },
      signal: controller.signal,
    })
    stopSimulation = async () => {
      controller.abort()
      await run
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true })
  })

  afterAll(async () => {
    await browser?.close()
    await stopSimulation?.()
    await gateway?.close()
    await broker?.close()
    await processor?.stop()
    await journal?.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  async function signIn(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1600, height: 1900 }, locale: 'en-US' })
    const page = await context.newPage()
    page.on('pageerror', (error) => {
      throw error
    })
    await page.goto(`${base}/`)
    await page.fill('#token-input', operator)
    await page.click('#login-submit')
    await page.locator('#app').waitFor({ state: 'visible' })
    return page
  }

  it('shows each tuned equipment, approves a proposal and sees it applied, rejects the next', async () => {
    expect(tuned.length).toBeGreaterThanOrEqual(2)
    const page = await signIn()
    // A card per tuned equipment (the plant tree, then GET /api/v1/setpoints), in advise mode.
    for (const scope of tuned) await page.locator(`#tuning-list li.tuner[data-scope="${scope}"]`).waitFor()
    expect(await page.locator('#tuning-list li.tuner').count()).toBe(tuned.length)
    expect(await page.locator('#tuning-list li.tuner[data-mode="advise"]').count()).toBe(tuned.length)

    // The first proposal: its card shows it with Approve and Reject; nothing is sent before.
    const proposed = page.locator('#tuning-list li.tuner[data-status="proposed"]').first()
    await proposed.locator('button.approve').waitFor({ state: 'visible', timeout: 90_000 })
    const scope = (await proposed.getAttribute('data-scope'))!
    const card = page.locator(`#tuning-list li.tuner[data-scope="${scope}"]`)
    const id = (await card.locator('.proposal').getAttribute('data-id'))!
    expect(await card.locator('.proposal .change').textContent()).toMatch(/^Proposed \d+(\.\d+)? → \d+(\.\d+)?$/)
    expect(await page.locator(`#setpoint-feed li[data-id="${id}"]`).getAttribute('data-status')).toBe('proposed')

    await card.locator('button.approve').click()
    // Approved, sent to the sleeping device at its next wake, applied by it: every step on the
    // setpoints channel, shown on the card and in the feed.
    await card.locator(`.tuner-events li[data-id="${id}"][data-status="applied"]`).waitFor({ timeout: 60_000 })
    await page.locator(`#setpoint-feed li[data-id="${id}"][data-status="applied"]`).waitFor()
    // The processor's own list says the same.
    const applied: any = await page.evaluate(
      async ({ token, eventScope }) => {
        const res = await fetch(`/api/v1/setpoints?scope=${encodeURIComponent(eventScope)}`, {
          headers: { authorization: `Bearer ${token}` },
        })
        return res.json()
      },
      { token: operator, eventScope: scope },
    )
    const status = applied.equipment[0]
    expect(
      status.history.some((event: { id: string; status: string }) => event.id === id && event.status === 'applied'),
    ).toBe(true)
    await card.locator('.saved').filter({ hasText: /Wh/ }).waitFor()

    // The next proposal, on any tuned equipment: rejected in the browser.
    const next = page.locator(`#tuning-list li.tuner[data-status="proposed"] .proposal:not([data-id="${id}"])`).first()
    await next.locator('button.reject').waitFor({ state: 'visible', timeout: 90_000 })
    const rejectedId = (await next.getAttribute('data-id'))!
    await next.locator('button.reject').click()
    await page
      .locator(`#setpoint-feed li[data-id="${rejectedId}"][data-status="rejected"]`)
      .waitFor({ timeout: 30_000 })
    await page.locator(`#tuning-list .tuner-events li[data-id="${rejectedId}"][data-status="rejected"]`).waitFor()
    await screenshot(page)
    await page.context().close()
  }, 240_000)

  it('switches every tuner to auto from the panel (PUT /api/v1/tuning), and back to advise', async () => {
    const page = await signIn()
    for (const scope of tuned) await page.locator(`#tuning-list li.tuner[data-scope="${scope}"]`).waitFor()
    await page.click('#tuning-mode button[data-mode="auto"]')
    await page.locator('#tuning-mode-note', { hasText: 'auto' }).waitFor()
    for (const scope of tuned) {
      await page.locator(`#tuning-list li.tuner[data-scope="${scope}"][data-mode="auto"]`).waitFor({ timeout: 30_000 })
    }
    await page.click('#tuning-mode button[data-mode="advise"]')
    for (const scope of tuned) {
      await page
        .locator(`#tuning-list li.tuner[data-scope="${scope}"][data-mode="advise"]`)
        .waitFor({ timeout: 30_000 })
    }
    await page.context().close()
  }, 120_000)
})

/** The committed docs/dashboard.png is made with PLANTWATT_DASHBOARD_SCREENSHOT=docs/dashboard.png. */
async function screenshot(page: Page): Promise<void> {
  const path = process.env.PLANTWATT_DASHBOARD_SCREENSHOT ?? join(tmpdir(), 'plantwatt-dashboard-setpoints.png')
  await mkdir(dirname(path), { recursive: true })
  await page.mouse.move(0, 0)
  await page.screenshot({ path, fullPage: true })
}
