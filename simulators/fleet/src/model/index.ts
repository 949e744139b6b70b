// The plant-and-device simulation of the fleet simulator (issue 4): pure, deterministic, time
// passed in. See simulation.ts for the API, equipment.ts for the physics, device.ts for NB-IoT
// behaviour and resolution, truth.ts for the ground truth.

export { IdleDetector, type IdleEpisode, type IdleRule } from './idle.ts'
export type { OutgoingMessage } from './messages.ts'
export { partitionFleet } from './partition.ts'
export { type FaultOptions, PlantSimulation, type SimulationOptions } from './simulation.ts'
export {
  type CommandRecord,
  type CounterReset,
  type FeasibleSetpoints,
  type GroundTruth,
  type IdleRuleInfo,
  type TruthJson,
  truthFromJson,
} from './truth.ts'
