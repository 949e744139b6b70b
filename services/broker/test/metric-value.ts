interface Metric {
  get(): Promise<{ values: { value: number; labels: Record<string, string | number | undefined> }[] }>
}

/** The current value of a prom-client metric for the given labels (0 when never set). */
export async function metricValue(metric: Metric, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get()
  const match = values.find((entry) => Object.entries(labels).every(([key, value]) => entry.labels[key] === value))
  return match?.value ?? 0
}
