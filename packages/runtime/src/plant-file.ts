import { readFile } from 'node:fs/promises'
import { type PlantModel, type PlantProblem, validatePlant } from '@plantwatt/contract'

/** A plant file that cannot be used, with every problem found (CONTRACT.md §1). */
export class PlantFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: PlantProblem[],
  ) {
    super(`plant file ${file} is invalid:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`)
    this.name = 'PlantFileError'
  }
}

export async function loadPlantFile(file: string): Promise<PlantModel> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new PlantFileError(file, [{ path: '$', message: `cannot read: ${(error as Error).message}` }])
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new PlantFileError(file, [{ path: '$', message: `not valid JSON: ${(error as Error).message}` }])
  }
  const result = validatePlant(json)
  if (!result.ok) throw new PlantFileError(file, result.problems)
  return result.plant
}
