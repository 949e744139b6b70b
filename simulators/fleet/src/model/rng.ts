// Random streams for the plant simulation. Every stochastic part of the model (a line, a device,
// a site's sky) draws from its own stream, seeded from the simulation seed and a stable key (its
// scope or device id), never from a shared one: what one device sends then does not depend on which
// other devices a process simulates, so a worker that simulates a share of the fleet sends the same
// bytes for its devices as a run of the whole plant.

import { createRng } from '../plant-generator.ts'

export type Rng = () => number

/** FNV-1a over the key, mixed with the seed (a 32-bit integer after `| 0`). */
export function streamSeed(seed: number, key: string): number {
  let hash = 0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b1)
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193)
  // Final avalanche (murmur3 fmix32) so that keys differing in the last character diverge at once.
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}

/** The stream of one part of the model. */
export function streamRng(seed: number, key: string): Rng {
  return createRng(streamSeed(seed, key))
}

/** Triangular noise in (-1, 1), mean 0, standard deviation 1/√6 ≈ 0.41: two draws, no logarithms. */
export function tri(rng: Rng): number {
  return rng() + rng() - 1
}

/** Uniform in [a, b). */
export function uniform(rng: Rng, a: number, b: number): number {
  return a + (b - a) * rng()
}

/** Exponential with the given mean (memoryless waiting times: failures, reboots). */
export function exponential(rng: Rng, mean: number): number {
  return -Math.log(1 - rng()) * mean
}
