// The report download (issue 17): the selected scope's report for the selected period, from
// GET /api/v1/reports with `Accept: text/csv` (CONTRACT.md §6: one row per scope, the scope then
// its children). The request carries the token, which a plain link could not, so the answer is
// fetched and handed to the browser as a Blob download.

/**
 * The server's name for the file (Content-Disposition), else one of the same form:
 * plantwatt-report-ningde_cells-week-2026-12-07.csv
 */
export function reportFileName(scope, period, date) {
  return `plantwatt-report-${scope.replaceAll('/', '_')}-${period}-${date}.csv`
}

/**
 * @param {import('./api.js').Api} api
 * @param {{scope: string, period: string, at: number, date: string}} selection
 */
export async function downloadReport(api, { scope, period, at, date }) {
  const { blob, fileName } = await api.blob('/api/v1/reports', { scope, period, at: String(at) }, 'text/csv')
  const url = URL.createObjectURL(blob)
  const link = document.createElement('a')
  link.href = url
  link.download = fileName ?? reportFileName(scope, period, date)
  link.hidden = true
  document.body.appendChild(link)
  link.click()
  link.remove()
  // The download has its own copy once it started; the URL is released a little later.
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}
